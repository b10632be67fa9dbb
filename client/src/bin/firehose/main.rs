//! `firehose`: subscribe to, list, publish, watch, change and close bounties from a
//! terminal or a script, and serve the firehose to AI assistants over MCP
//! (`firehose mcp`).
//!
//! Layout: `args.rs` (the command line), `output.rs` (human lines or JSON lines),
//! `commands.rs` (subscribe, backfill, publish, watch, update, close), `mcp.rs` (the
//! MCP server), and `exit.rs` (the documented exit codes).

mod args;
mod commands;
mod exit;
mod mcp;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::exit::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr (stdout carries results, or the MCP protocol); quiet by default.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIREHOSE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            return Failure::runtime(format!("cannot start the async runtime: {err}")).report()
        }
    };
    let outcome = runtime.block_on(async {
        let client = cli.connection.client()?;
        match cli.command {
            Command::Subscribe(args) => commands::subscribe(&client, args).await,
            Command::Backfill(args) => commands::backfill(&client, args).await,
            Command::Publish(args) => commands::publish(&client, args).await,
            Command::Watch(args) => commands::watch(&client, args).await,
            Command::Update(args) => commands::update(&client, args).await,
            Command::Close(args) => commands::close(&client, args).await,
            Command::Mcp => mcp::serve(client).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
