//! Logging setup: `RUST_LOG` filtering, JSON in Lambda, and one rule that no setting
//! overrides: dependencies never log at TRACE. At that level `lambda_runtime` logs
//! the raw invocation event (every request header, `Authorization` included) and the
//! AWS SDK logs signed requests; nothing that sees a request may be that verbose.

use tracing::Level;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Whether an event from `target` at `level` may be written.
pub fn may_log(target: &str, level: Level) -> bool {
    // Our crates: firehose, firehose_lambda, firehose_admin.
    level != Level::TRACE || target.starts_with("firehose")
}

/// Installs the global subscriber, writing to stderr.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let safe = filter_fn(|meta| may_log(meta.target(), *meta.level()));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        // CloudWatch adds its own timestamp; one JSON object per line.
        LogFormat::Json => registry
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .without_time()
                    .with_filter(safe),
            )
            .init(),
        LogFormat::Text => registry
            .with(layer.with_ansi(false).with_filter(safe))
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_never_trace() {
        assert!(!may_log(
            "lambda_runtime::layers::api_response",
            Level::TRACE
        ));
        assert!(!may_log(
            "aws_smithy_runtime::client::orchestrator",
            Level::TRACE
        ));
        assert!(!may_log("hyper_util::client", Level::TRACE));
        assert!(may_log("firehose_lambda", Level::TRACE));
        assert!(may_log(
            "lambda_runtime::layers::api_response",
            Level::DEBUG
        ));
        assert!(may_log("firehose::stream", Level::TRACE));
        assert!(may_log("firehose::access", Level::INFO));
    }
}
