//! The contract of a refused input, shared by the bad-input suites of the
//! host tools (`host/tests/bad_input.rs`) and of the trainers
//! (`train/tests/bad_input.rs`, which includes this file by path): exit
//! status 2, one `error:` message naming the file and the problem, no
//! panic, backtrace or Rust internals, no cause said twice in a row, and
//! every file of the folder as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

/// One bad-input case: a command of a tool run in a scratch folder.
pub struct Case {
    pub name: &'static str,
    /// Prepares the scratch folder (the suite's common files are already
    /// there).
    pub setup: fn(&Path),
    pub bin: &'static str,
    /// The arguments (the trainers' suite reads `{data}` as the tool's mini
    /// dataset).
    pub args: &'static [&'static str],
    /// What the message must hold: the file's name and the problem.
    pub expect: &'static [&'static str],
}

/// Every file under `dir` (recursively) and its bytes; links and special
/// files by their kind.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            let content = if kind.is_symlink() {
                format!("link to {}", std::fs::read_link(&path).unwrap().display()).into_bytes()
            } else if kind.is_dir() {
                stack.push(path.clone());
                b"directory".to_vec()
            } else if kind.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                b"special".to_vec()
            };
            out.insert(path.strip_prefix(dir).unwrap().to_owned(), content);
        }
    }
    out
}

/// Asserts that `out`, the run described by `what`, refused its input as
/// the contract says, with every string of `expect` in its message, and
/// left `dir` as `before` (its [`snapshot`]).
pub fn assert_refused(
    what: &str,
    out: &Output,
    expect: &[&str],
    dir: &Path,
    before: &BTreeMap<PathBuf, Vec<u8>>,
) {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let what = format!("{what}\n--- stderr:\n{err}");
    assert_eq!(out.status.code(), Some(2), "{what}");
    assert!(err.starts_with("error: "), "{what}");
    assert_eq!(err.matches("error: ").count(), 1, "one message: {what}");
    for e in expect {
        assert!(err.contains(e), "missing `{e}`: {what}");
    }
    for internal in [
        "panicked",
        "backtrace",
        "Some(",
        "None)",
        "Os {",
        "kind: ",
        "Custom {",
        "Dims {",
        "Integer(",
        "Float(",
        "FixedAscii(",
        "::",
    ] {
        assert!(!err.contains(internal), "`{internal}` in: {what}");
    }
    // No part of the cause chain said twice in a row ("x: x").
    let first = err.lines().next().unwrap_or_default();
    let parts: Vec<&str> = first.split(": ").collect();
    for pair in parts.windows(2) {
        assert_ne!(pair[0], pair[1], "repeated `{}`: {what}", pair[0]);
    }
    assert_eq!(&snapshot(dir), before, "files changed: {what}");
}

/// Runs every case (`run` panics on a failed one) and fails once, listing
/// each failed case by name with its message, so that one run shows them all.
pub fn run_all<C>(cases: &[C], name: impl Fn(&C) -> &str, run: impl Fn(&C)) {
    let mut failures = Vec::new();
    for case in cases {
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(case))) {
            let message = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {message}", name(case)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Asserts that there are at least `min` names and that no two are equal.
pub fn assert_unique_names<'n>(names: impl Iterator<Item = &'n str>, min: usize) {
    let mut names: Vec<&str> = names.collect();
    let count = names.len();
    assert!(count >= min, "{count} cases, fewer than {min}");
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "case names repeat");
}
