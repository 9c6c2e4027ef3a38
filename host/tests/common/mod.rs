//! What the command-line tests share: scratch folders, their listings, the
//! text of a run's output, and where the reference vectors are. The
//! commands themselves run through `assert_cmd`.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::Output;

use tempfile::TempDir;

/// A fresh scratch folder for one test of one binary, removed when dropped
/// (also when the test panics).
pub fn scratch(binary: &str, test: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("akida-{binary}-{test}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("scratch folder for {binary} {test}: {e}"))
}

/// The names in a folder, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Standard output then standard error.
pub fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// Where the reference vector sets are read from (`AKIDA_REFERENCE_DIR`, or
/// the repository's copy).
pub fn reference_dir() -> PathBuf {
    match std::env::var_os("AKIDA_REFERENCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/reference/vectors"),
    }
}
