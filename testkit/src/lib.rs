//! Development tooling shared by the tests (`tests/`) and the benchmark driver
//! (`bench/`): the real parts they run against, started and broken on purpose. Never
//! part of the function, the SDK or the CLI.
//!
//! # Layout
//!
//! - [`front`]: an AWS-like front for the function: like a Function URL, it keeps
//!   reading a response after its client left, and records when each one ended.
//! - [`proxy`]: one loopback proxy with fault hooks (cut, stall, outage, DynamoDB's
//!   throttling answers, 500s, delays) that counts the requests it forwards.
//! - [`function`]: the function under `cargo lambda watch` on a free loopback port.
//! - [`dynamo_local`]: Amazon's DynamoDB Local, shared or owned by one test.
//! - [`process`]: process trees and what they cost, read from `/proc`.
//! - [`probe`]: one-shot HTTP requests, to know when a process is ready.
//! - [`runtime_api`]: a Lambda runtime API of the tests' own, for invocations with a
//!   real deadline, read to their end as a Function URL reads them.
//!
//! Every fallible step returns an error rather than panicking, since the benchmark
//! driver reports errors; the tests `expect` them.

pub mod dynamo_local;
pub mod front;
pub mod function;
pub mod probe;
pub mod process;
pub mod proxy;
pub mod runtime_api;

use std::path::PathBuf;

/// A TCP port that is free on 127.0.0.1 right now (bound, then released).
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The repository root: where `cargo lambda watch` builds the function and where
/// the scripts install their tools (`.local/`).
pub fn workspace_root() -> PathBuf {
    let testkit = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    testkit.parent().map(PathBuf::from).unwrap_or(testkit)
}
