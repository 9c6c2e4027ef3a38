//! What the command-line tools share: how an error is reported.
//!
//! Library errors print their own message and give their cause as
//! [`Error::source`], so a report is the chain of messages joined by `: `,
//! each printed once.

use std::error::Error;
use std::process::ExitCode;

/// The error and its causes, outermost first, joined by `: `. A cause
/// whose message an outer one already holds is left out: some crates'
/// errors (`image`'s decoding errors) print their source and return it too.
pub fn report(e: &(dyn Error + 'static)) -> String {
    let mut text = e.to_string().trim_end().to_owned();
    let mut cause = e.source();
    while let Some(c) = cause {
        let message = c.to_string();
        let message = message.trim();
        if !message.is_empty() && !text.contains(message) {
            text.push_str(": ");
            text.push_str(message);
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

    /// An error that prints its source and also returns it, as `image`'s
    /// decoding errors do.
    #[derive(Debug, thiserror::Error)]
    #[error("decoding: {0}\n")]
    struct Echo(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("a.jpg")]
    struct File(#[source] Echo);

    #[test]
    fn a_cause_already_printed_is_left_out() {
        let e = File(Echo(std::io::Error::other("not enough bytes")));
        assert_eq!(report(&e), "a.jpg: decoding: not enough bytes");
    }
}
