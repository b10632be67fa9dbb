//! The function itself, run by `cargo lambda watch` on a free loopback port.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use firehose::auth::ApiKeys;
use serde_json::Value;

use super::dynamo::{free_port, fresh_table};
use super::{http, TEST_KEY};

/// A setting of the harness, not of the function: `cargo lambda watch --concurrency`.
pub const CONCURRENCY: &str = "FIREHOSE_TEST_CONCURRENCY";

/// A running function with its own table.
pub struct Function {
    pub base: String,
    pub table: String,
    pub dynamo_endpoint: String,
    pub log_path: PathBuf,
    child: Child,
}

pub fn cargo_lambda() -> String {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".local/venv/bin/cargo-lambda");
    if local.exists() {
        local.display().to_string()
    } else {
        "cargo-lambda".to_owned()
    }
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
        let port = free_port();
        let logs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-logs");
        std::fs::create_dir_all(&logs).expect("log dir");
        let log_path = logs.join(format!("{table}.log"));
        let log = File::create(&log_path).expect("log file");
        // How many invocations (so open streams) run at once. `cargo lambda watch`
        // starts processes in proportion to it, and 64 overloads 2 cores: 8 unless a
        // test needs more open at once and says so.
        let concurrency = env
            .iter()
            .find(|(name, _)| *name == CONCURRENCY)
            .map_or("8", |(_, value)| *value);
        let mut command = Command::new(cargo_lambda());
        command
            .args([
                "lambda",
                "watch",
                "--ignore-changes",
                "--disable-cors",
                "--quiet",
            ])
            .args([
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
                "--concurrency",
                concurrency,
                "--bin",
                "firehose-lambda",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("TABLE_NAME", table)
            .env("AWS_ENDPOINT_URL_DYNAMODB", dynamo_endpoint)
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_REGION", "us-east-1")
            .env("PUBLISH_API_KEY_SHA256", ApiKeys::hash_hex(TEST_KEY))
            .env("RUST_LOG", "info")
            .env_remove("FIREHOSE_TEST_DYNAMODB_ENDPOINT");
        for (name, value) in env.iter().filter(|(name, _)| *name != CONCURRENCY) {
            command.env(name, value);
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("cargo-lambda must be on PATH (scripts/test installs it)");
        let function = Function {
            base: format!("http://127.0.0.1:{port}"),
            table: table.to_owned(),
            dynamo_endpoint: dynamo_endpoint.to_owned(),
            log_path,
            child,
        };
        function.wait_ready().await;
        function
    }

    /// Ready once a real request was answered by the function (a 400 for a bad filter).
    async fn wait_ready(&self) {
        let probe = format!("{}/api/v1/bounties/stream?ready_probe=1", self.base);
        let client = http();
        for _ in 0..1800 {
            if let Ok(response) = client.get(&probe).send().await {
                if response.status() == 400 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the function did not start; see {}",
            self.log_path.display()
        );
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
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Function {
    /// Kills the function with SIGKILL, as a crashed instance dies: nothing in it
    /// runs (no lease release, no checkpoint).
    pub fn kill_hard(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        // The whole process group: cargo lambda watch and the function processes.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}
