//! What the unit tests of this crate share: a scratch folder.

/// A fresh scratch folder named after `tag`, removed when dropped (also
/// when the test panics).
pub fn scratch(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("akida-{tag}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("scratch folder for {tag}: {e}"))
}
