//! The Lambda function: config -> DynamoDB client -> router -> streaming runtime.
#![recursion_limit = "256"]

use std::sync::Arc;

use firehose::config::Config;
use firehose::http::{handle, App};
use firehose::store::dynamo::{client_from_env, DynamoFeedStore};
use lambda_http::{run_with_streaming_response_concurrent, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("firehose: configuration error: {err}");
            std::process::exit(2);
        }
    };
    firehose::logging::init(config.log_format);
    tracing::info!(
        table = %config.table_name,
        poll_interval_ms = config.poll_interval.as_millis() as u64,
        heartbeat_s = config.heartbeat.as_secs(),
        stream_max_s = config.stream_max.as_secs(),
        lookback_s = config.lookback.as_secs(),
        feed_shards = config.feed_shards,
        publish_keys = config.publish_keys.len(),
        "firehose starting"
    );
    let store = DynamoFeedStore::new(
        client_from_env().await,
        &config.table_name,
        config.feed_shards,
        config.lookback,
    );
    let app = Arc::new(App::new(config, store));
    // One binary for both platforms. On Lambda Managed Instances the platform sets
    // AWS_LAMBDA_MAX_CONCURRENCY and the runtime polls for that many invocations at
    // once, each on a clone of this service (so all of them share `app`: its config
    // and the store's client). On classic Lambda the variable is unset and the runtime
    // takes one invocation at a time, as `run_with_streaming_response` did (which
    // ignores the variable: it only warns and still runs one at a time).
    run_with_streaming_response_concurrent(service_fn(move |req: Request| {
        let app = app.clone();
        async move { Ok::<_, Error>(handle(&app, req).await) }
    }))
    .await
}
