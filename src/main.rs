//! The Lambda function: config -> DynamoDB client -> router -> streaming runtime.
#![recursion_limit = "256"]

use std::sync::Arc;

use firehose::config::Config;
use firehose::http::{handle, App};
use firehose::store::dynamo::{client_from_env, DynamoFeedStore};
use lambda_http::{run_with_streaming_response, service_fn, Error, Request};

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
    run_with_streaming_response(service_fn(move |req: Request| {
        let app = app.clone();
        async move { Ok::<_, Error>(handle(&app, req).await) }
    }))
    .await
}
