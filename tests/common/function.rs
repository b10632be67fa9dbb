//! The function itself, on a table of its own, with the tests' vocabulary: publish,
//! subscribe, its store, its logs. Started by firehose-testkit's launcher.

use std::path::PathBuf;
use std::time::Duration;

use firehose::auth::ApiKeys;
use firehose_testkit::function::Launch;
use serde_json::Value;

use super::dynamo::fresh_table;
use super::{http, TEST_KEY};

/// A setting of the harness, not of the function: how many invocations run at once
/// (firehose-testkit's `Launch::concurrency`; its default when absent, which depends on
/// the runtime mode `FIREHOSE_TEST_RUNTIME` picks).
pub const CONCURRENCY: &str = "FIREHOSE_TEST_CONCURRENCY";

/// A running function with its own table.
pub struct Function {
    pub base: String,
    pub table: String,
    pub dynamo_endpoint: String,
    pub log_path: PathBuf,
    process: firehose_testkit::function::Function,
}

impl Function {
    /// Starts the function on a fresh table of the shared DynamoDB Local.
    pub async fn on_shared(label: &str, env: &[(&str, &str)]) -> Function {
        Self::start(&super::DynamoLocal::shared_endpoint().await, label, env).await
    }

    /// Starts the function against `dynamo_endpoint` with a fresh table and `env`
    /// (stream settings and the like) on top of the defaults.
    pub async fn start(dynamo_endpoint: &str, label: &str, env: &[(&str, &str)]) -> Function {
        let table = fresh_table(dynamo_endpoint, label).await;
        Self::start_on_table(dynamo_endpoint, &table, env).await
    }

    /// Starts the function on an existing table.
    pub async fn start_on_table(
        dynamo_endpoint: &str,
        table: &str,
        env: &[(&str, &str)],
    ) -> Function {
        let log_path = firehose_testkit::workspace_root()
            .join("target/test-logs")
            .join(format!("{table}.log"));
        let mut launch = Launch::new("firehose-lambda", &log_path)
            .env("TABLE_NAME", table)
            .env("AWS_ENDPOINT_URL_DYNAMODB", dynamo_endpoint)
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_REGION", "us-east-1")
            .env("PUBLISH_API_KEY_SHA256", ApiKeys::hash_hex(TEST_KEY))
            .env("RUST_LOG", "info")
            .env_remove("FIREHOSE_TEST_DYNAMODB_ENDPOINT");
        for (name, value) in env {
            if *name == CONCURRENCY {
                let concurrency = value
                    .parse()
                    .expect("FIREHOSE_TEST_CONCURRENCY is a number");
                launch = launch.concurrency(concurrency);
            } else {
                launch = launch.env(*name, *value);
            }
        }
        if env.contains(&("ROUTES", "publish")) {
            // No stream to probe: the backfill refuses the unknown parameter instead.
            launch = launch.ready_probe("/api/v1/tasks?ready_probe=1", 400);
        }
        let process = launch
            .start()
            .await
            .unwrap_or_else(|err| panic!("the function did not start: {err}"));
        Function {
            base: process.base.clone(),
            table: table.to_owned(),
            dynamo_endpoint: dynamo_endpoint.to_owned(),
            log_path,
            process,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// Publishes `body` with the test key; returns the response status and JSON.
    pub async fn try_publish(&self, body: &Value) -> (u16, Value) {
        let response = http()
            .post(self.url("/api/v1/tasks"))
            .bearer_auth(TEST_KEY)
            .json(body)
            .send()
            .await
            .expect("publish request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Publishes `body` with the test key; returns the raw response.
    pub async fn try_publish_raw(&self, body: &Value) -> reqwest::Response {
        http()
            .post(self.url("/api/v1/tasks"))
            .bearer_auth(TEST_KEY)
            .json(body)
            .send()
            .await
            .expect("publish request")
    }

    /// Publishes `body`, insisting on 201; returns the bounty's id.
    pub async fn publish(&self, body: &Value) -> String {
        let (status, bounty) = self.try_publish(body).await;
        assert_eq!(status, 201, "publish answered {status}: {bounty}");
        bounty["id"].as_str().expect("bounty id").to_owned()
    }

    /// The feed store of this function's table (`shards` as the function runs it).
    pub async fn store(&self, shards: usize) -> firehose::store::dynamo::DynamoFeedStore {
        firehose::store::dynamo::DynamoFeedStore::new(
            super::dynamo::client(&self.dynamo_endpoint).await,
            &self.table,
            shards,
            Duration::from_secs(86_400),
        )
    }

    /// A subscriber on `path`, connected, past its `connected` event (returned).
    pub async fn subscribe(&self, path: &str) -> (super::Subscriber, Value) {
        let mut subscriber = super::Subscriber::new(self.url(path));
        subscriber.connect().await;
        let connected = subscriber
            .next_named("connected", Duration::from_secs(30))
            .await;
        (subscriber, super::sse::json(&connected))
    }

    /// The function's log so far.
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// Kills the function with SIGKILL, as a crashed instance dies: nothing in it
    /// runs (no lease release, no checkpoint).
    pub fn kill_hard(&mut self) {
        self.process.kill_hard();
    }

    /// Stops the function: its port refuses connections, open ones are cut.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Starts the stopped function again on the same port; returns once it is ready.
    pub async fn resume(&mut self) {
        self.process
            .resume()
            .await
            .unwrap_or_else(|err| panic!("the function did not start again: {err}"));
    }
}
