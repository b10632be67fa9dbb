//! Exit codes (documented in `firehose --help` and the README):
//!
//! - 0: success.
//! - 1: runtime error: network, server error, an unexpected answer.
//! - 2: usage error: bad flags, or the server rejected the request's input (4xx).
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
            ClientError::Rejected { status, .. } if *status != 401 && *status != 403 => {
                Failure::usage(format!("the server rejected the request: {err}"))
            }
            ClientError::Rejected { .. } => Failure::runtime(format!("the server refused: {err}")),
            ClientError::InvalidUrl { .. } => Failure::usage(err.to_string()),
            _ => Failure::runtime(err.to_string()),
        }
    }
}
