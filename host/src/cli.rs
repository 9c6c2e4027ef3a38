//! What the command-line tools share: how an error is reported.

use std::process::ExitCode;

/// The error and its causes, each cause only once (our errors already quote
/// their source in their own message).
pub fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Exit status of a command: success, or the error on stderr and status 2
/// (the status of argument errors too).
pub fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_quoted_once() {
        let inner = anyhow::anyhow!("disk full");
        let e = inner.context("m.h5: cannot save");
        assert_eq!(message(&e), "m.h5: cannot save: disk full");
        let e = anyhow::anyhow!("m.h5: disk full").context("m.h5: disk full");
        assert_eq!(message(&e), "m.h5: disk full");
    }
}
