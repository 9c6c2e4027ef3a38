//! What the training tests share.

use std::process::{Command, Output};

/// The stdout and stderr of a tool's run `out` (of `c`), which must have
/// succeeded.
pub fn succeeded(c: &Command, out: Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{c:?} failed: {text}");
    text
}
