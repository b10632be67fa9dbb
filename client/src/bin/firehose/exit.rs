//! Exit codes (documented in `firehose --help` and the README):
//!
//! - 0: success.
//! - 1: runtime error: network, server error, an unexpected answer, 401/403/408/429.
//! - 2: usage error: bad flags, or the server rejected the request as invalid (any
//!   other 4xx: 400, 404, 413, 415, 422).
//! - 3: `--timeout` passed before `--max-results` bounties arrived (before any
//!   bounty without `--max-results`); those that did arrive were printed. For `watch`:
//!   before the bounty was closed or expired (or `--max-changes` changes arrived).
//! - 4: no bounty with that id (a 404 to `watch`, `update` or `close`): a script can
//!   tell a mistyped or foreign id from a bad flag.
//! - 5: the bounty is closed or expired and can no longer change (a 409 to `update`
//!   or `close`): a script can tell "already done" from a failure.

use std::process::ExitCode;

use firehose_client::ClientError;

pub const RUNTIME: u8 = 1;
pub const USAGE: u8 = 2;
pub const TIMEOUT: u8 = 3;
pub const NOT_FOUND: u8 = 4;
pub const CLOSED: u8 = 5;

/// Why the command failed, and its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn runtime(message: impl Into<String>) -> Self {
        Self {
            code: RUNTIME,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: USAGE,
            message: message.into(),
        }
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self {
            code: TIMEOUT,
            message: message.into(),
        }
    }

    /// A failure of a command that names one bounty (`watch`, `update`, `close`): an
    /// unknown id and a closed bounty have codes of their own; the rest as for any
    /// command.
    pub fn about_bounty(err: ClientError) -> Self {
        match &err {
            ClientError::Rejected { status: 404, .. } => Self {
                code: NOT_FOUND,
                message: format!("no such bounty: {err}"),
            },
            ClientError::Rejected { status: 409, .. } => Self {
                code: CLOSED,
                message: format!("the bounty can no longer change: {err}"),
            },
            _ => err.into(),
        }
    }

    pub fn report(self) -> ExitCode {
        if !self.message.is_empty() {
            eprintln!("firehose: {}", self.message);
        }
        ExitCode::from(self.code)
    }
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        match &err {
            // Not the request's content: the key, or the server's load.
            ClientError::Rejected {
                status: 401 | 403 | 408 | 429,
                ..
            } => Failure::runtime(format!("the server refused: {err}")),
            ClientError::Rejected { .. } => {
                Failure::usage(format!("the server rejected the request: {err}"))
            }
            ClientError::InvalidUrl { .. } => Failure::usage(err.to_string()),
            _ => Failure::runtime(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16) -> ClientError {
        ClientError::Rejected {
            status,
            code: "c".into(),
            param: None,
            message: "m".into(),
        }
    }

    #[test]
    fn invalid_requests_are_usage_errors_and_refusals_runtime_errors() {
        for status in [400, 404, 413, 415, 422] {
            assert_eq!(Failure::from(rejected(status)).code, USAGE, "{status}");
        }
        for status in [401, 403, 408, 429] {
            assert_eq!(Failure::from(rejected(status)).code, RUNTIME, "{status}");
        }
        let network = ClientError::Protocol("x".into());
        assert_eq!(Failure::from(network).code, RUNTIME);
    }

    #[test]
    fn commands_about_one_bounty_tell_unknown_and_closed_apart() {
        assert_eq!(Failure::about_bounty(rejected(404)).code, NOT_FOUND);
        assert_eq!(Failure::about_bounty(rejected(409)).code, CLOSED);
        assert_eq!(Failure::about_bounty(rejected(422)).code, USAGE);
        assert_eq!(Failure::about_bounty(rejected(403)).code, RUNTIME);
        assert_eq!(Failure::from(rejected(404)).code, USAGE, "other commands");
    }
}
