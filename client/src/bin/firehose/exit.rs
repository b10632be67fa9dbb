//! Exit codes (documented in `firehose --help` and the README):
//!
//! - 0: success.
//! - 1: runtime error: network, server error, an unexpected answer, 401/403/408/429.
//! - 2: usage error: bad flags, or the server rejected the request as invalid (any
//!   other 4xx: 400, 404, 413, 415, 422).
//! - 3: `--timeout` passed before `--max-results` bounties arrived (before any
//!   bounty without `--max-results`); those that did arrive were printed.

use std::process::ExitCode;

use firehose_client::ClientError;

pub const RUNTIME: u8 = 1;
pub const USAGE: u8 = 2;
pub const TIMEOUT: u8 = 3;

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
}
