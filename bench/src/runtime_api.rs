//! The Lambda runtime API, played by the benchmark: no emulator in the way.
//!
//! - [`cold_start`]: start-up timing: starts the release binary and times (a) process
//!   start to the runtime's first `GET .../invocation/next` (what Lambda reports as
//!   Init Duration) and (b) process start to the first invocation's response reaching
//!   the runtime API.
//! - [`RuntimeApi`] and [`Direct`]: one function process serving many invocations at
//!   once (`AWS_LAMBDA_MAX_CONCURRENCY`, as on Lambda Managed Instances), fed Function
//!   URL invocations by the benchmark, which reads the streamed response bodies
//!   itself (the metadata prelude, eight NUL bytes, then the body). Where `cargo
//!   lambda watch` bounds a figure, the scenarios measure through this as well.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub use firehose_testkit::runtime_api::{function_url_event, Answer, RuntimeApi};

use crate::BoxError;

#[derive(Debug, Clone, Copy)]
pub struct StartSample {
    /// Process start to the first call for an invocation.
    pub init: Duration,
    /// Process start to the first response (its head) posted back.
    pub first_response: Duration,
}

enum Seen {
    Next,
    Response,
}

/// One cold start of `binary` serving `event` (a Function URL event) once.
pub async fn cold_start(
    binary: &Path,
    env: &[(&str, String)],
    event: &str,
    log: &Path,
) -> Result<StartSample, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?;
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let event = event.to_owned();
    let server = tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            tokio::spawn(serve(connection, event.clone(), seen_tx.clone()));
        }
    });
    let log = std::fs::File::create(log)?;
    let mut command = Command::new(binary);
    command
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "firehose")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench");
    for (name, value) in env {
        command.env(name, value);
    }
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let mut init = None;
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some((what, at)) = seen_rx.recv().await {
            match what {
                Seen::Next => {
                    init.get_or_insert(at - started);
                }
                Seen::Response => return Some(at - started),
            }
        }
        None
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    server.abort();
    match (init, outcome) {
        (Some(init), Ok(Some(first_response))) => Ok(StartSample {
            init,
            first_response,
        }),
        _ => Err("the binary did not serve an invocation within 30 s".into()),
    }
}

/// Serves one runtime API connection: hands out the event once per `next`, and
/// reports when a response starts arriving.
async fn serve(
    mut connection: TcpStream,
    event: String,
    seen: mpsc::UnboundedSender<(Seen, Instant)>,
) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut served = 0u32;
    loop {
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            match connection.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        buffer.drain(..end + 4);
        let request_line = head.lines().next().unwrap_or_default();
        if request_line.starts_with("GET ") && request_line.contains("/invocation/next") {
            let _ = seen.send((Seen::Next, Instant::now()));
            served += 1;
            let deadline_ms = chrono::Utc::now().timestamp_millis() + 300_000;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 lambda-runtime-aws-request-id: bench-{served}\r\n\
                 lambda-runtime-deadline-ms: {deadline_ms}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:000000000000:function:firehose\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\n\
                 content-length: {}\r\n\r\n{event}",
                event.len()
            );
            if connection.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        } else if request_line.starts_with("POST ") && request_line.contains("/response") {
            let _ = seen.send((Seen::Response, Instant::now()));
            return;
        } else {
            // Errors and anything else: acknowledge and keep going.
            let _ = connection
                .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    }
}

/// One function process on the benchmark's own runtime API.
pub struct Direct {
    pub api: RuntimeApi,
    child: std::process::Child,
}

impl Direct {
    /// Starts `binary` with `env`, serving up to `concurrency` invocations at once,
    /// and waits until its init is done (its first call for an invocation).
    pub async fn start(
        binary: &Path,
        env: &[(String, String)],
        concurrency: usize,
        log_path: &Path,
    ) -> Result<Direct, BoxError> {
        let api = RuntimeApi::start().await?;
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let log = std::fs::File::create(log_path)?;
        let mut command = Command::new(binary);
        command
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "firehose")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            .env("AWS_LAMBDA_MAX_CONCURRENCY", concurrency.to_string());
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|err| format!("{}: {err}", binary.display()))?;
        let mut direct = Direct { api, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while direct.api.nexts() == 0 {
            if let Some(error) = direct.api.init_error() {
                return Err(format!("the function's init failed: {error}").into());
            }
            if let Some(status) = direct.child.try_wait()? {
                return Err(format!(
                    "the function exited ({status}) during its init; see {}",
                    log_path.display()
                )
                .into());
            }
            if Instant::now() > deadline {
                return Err("the function did not finish its init within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(direct)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One Function URL request, answered as it streams.
    pub async fn request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Answer, BoxError> {
        self.api
            .invoke(function_url_event(method, path_and_query, headers, body))
            .await
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
