//! What the command-line tools share: how an error is reported.
//!
//! Library errors print their own message and give their cause as
//! [`Error::source`], so a report is the chain of messages joined by `: `,
//! each printed once.

use std::error::Error;
use std::process::ExitCode;

/// The error and its causes, outermost first, joined by `: `.
pub fn report(e: &(dyn Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let message = c.to_string();
        if !message.is_empty() {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = c.source();
    }
    text
}

/// Exit status of a command: success, or the error on stderr and status 2
/// (the status of argument errors too).
pub fn exit<E: AsRef<dyn Error + 'static>>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("m.h5: cannot save")]
    struct Save(#[source] std::io::Error);

    #[test]
    fn causes_are_reported_once_in_order() {
        let e = Save(std::io::Error::other("disk full"));
        assert_eq!(report(&e), "m.h5: cannot save: disk full");
    }
}
