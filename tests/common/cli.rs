//! The `firehose` CLI binary (package firehose-client) and the Python MCP client, for
//! the end-to-end tests of the clients. scripts/test builds the binary first.

use std::path::PathBuf;

/// target/debug/firehose (or under CARGO_TARGET_DIR).
pub fn firehose_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let bin = target.join("debug/firehose");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p firehose-client`; scripts/test does)",
        bin.display()
    );
    bin
}

/// The Python with the `mcp` package: FIREHOSE_TEST_PYTHON (set by scripts/test), or
/// the repo's .local venv.
pub fn python_with_mcp() -> PathBuf {
    std::env::var_os("FIREHOSE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".local/venv/bin/python"))
}
