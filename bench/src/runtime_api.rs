//! Start-up timing without any emulator in the way: the benchmark plays the Lambda
//! runtime API itself, starts the release binary, and times (a) process start to the
//! runtime's first `GET .../invocation/next` (what Lambda reports as Init Duration)
//! and (b) process start to the first invocation's response reaching the runtime API.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

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
