//! A Lambda runtime API of the tests' own, for what `cargo lambda watch` cannot show:
//! invocations with a real deadline (the emulator sends 600,000 ms after the epoch),
//! and a response read to its end whatever the client does, as a Function URL reads it.
//!
//! The function process polls `GET .../invocation/next` here; [`RuntimeApi::invoke`]
//! hands it one event with the deadline asked for and returns the streamed response as
//! it arrives: the prelude (status and headers, JSON) and then the body's bytes. HTTP/1.1
//! by hand (heads with `httparse`, chunked bodies decoded here), like the proxy: the
//! runtime client sends one request at a time per connection.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

/// One invocation handed to the function.
struct Pending {
    request_id: String,
    event: String,
    deadline_ms: u64,
    body: mpsc::UnboundedSender<Bytes>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Pending>,
    /// Invocations the function took, by request id: where their responses go.
    running: Vec<(String, mpsc::UnboundedSender<Bytes>)>,
    /// `POST .../error` and `init/error` bodies, as they came.
    errors: Vec<String>,
    next_id: u64,
}

struct Shared {
    state: Mutex<State>,
    queued: Notify,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The runtime API, on a loopback port, until dropped.
pub struct RuntimeApi {
    /// `host:port`, for `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

/// A streamed response: the bytes the function sent, as they arrive (the prelude,
/// eight zero bytes, then the body); ends when the function ends the response.
pub struct Response {
    pub bytes: mpsc::UnboundedReceiver<Bytes>,
}

impl Response {
    /// Reads until the prelude is complete: (prelude JSON, the body bytes read past it).
    pub async fn prelude(&mut self) -> Option<(String, Vec<u8>)> {
        let mut seen = Vec::new();
        loop {
            if let Some(at) = seen.windows(8).position(|w| w == [0u8; 8]) {
                let rest = seen.split_off(at + 8);
                seen.truncate(at);
                return Some((String::from_utf8_lossy(&seen).into_owned(), rest));
            }
            seen.extend_from_slice(&self.bytes.recv().await?);
        }
    }
}

impl RuntimeApi {
    pub async fn start() -> io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            queued: Notify::new(),
        });
        let server = tokio::spawn(accept(listener, shared.clone()));
        Ok(RuntimeApi {
            address,
            shared,
            server,
        })
    }

    /// Queues `event` (a Function URL event, JSON) for the function, due `timeout`
    /// from now, and returns its response as the function streams it.
    pub fn invoke(&self, event: String, timeout: Duration) -> Response {
        let deadline = SystemTime::now() + timeout;
        let deadline_ms = deadline
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let (body, bytes) = mpsc::unbounded_channel();
        {
            let mut state = self.shared.state();
            state.next_id += 1;
            let request_id = format!("test-invocation-{}", state.next_id);
            state.queue.push_back(Pending {
                request_id,
                event,
                deadline_ms,
                body,
            });
        }
        self.shared.queued.notify_one();
        Response { bytes }
    }

    /// The error reports the function posted so far.
    pub fn errors(&self) -> Vec<String> {
        self.shared.state().errors.clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((connection, _)) = listener.accept().await {
        tokio::spawn(serve(connection, shared.clone()));
    }
}

/// One connection of the runtime client: request after request.
async fn serve(mut connection: TcpStream, shared: Arc<Shared>) {
    let mut buffer = Vec::new();
    while let Some((method, path, headers)) = read_head(&mut connection, &mut buffer).await {
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let answered = if method == "GET" && path.ends_with("/invocation/next") {
            next(&mut connection, &shared).await
        } else if method == "POST" && path.contains("/invocation/") && path.ends_with("/response") {
            let id = path.rsplit('/').nth(1).unwrap_or_default().to_owned();
            let sink = {
                let mut state = shared.state();
                let at = state.running.iter().position(|(running, _)| *running == id);
                at.map(|at| state.running.swap_remove(at).1)
            };
            let read = if chunked {
                read_chunked(&mut connection, &mut buffer, |data| {
                    if let Some(sink) = &sink {
                        let _ = sink.send(data);
                    }
                })
                .await
            } else {
                read_exact_body(&mut connection, &mut buffer, length)
                    .await
                    .map(|data| {
                        if let Some(sink) = &sink {
                            let _ = sink.send(Bytes::from(data));
                        }
                    })
            };
            // Dropping the sink ends the response for the reader.
            drop(sink);
            read.is_some() && accepted(&mut connection).await
        } else {
            // `.../error`, `init/error`: recorded, acknowledged.
            let body = if chunked {
                let mut all = Vec::new();
                read_chunked(&mut connection, &mut buffer, |data| {
                    all.extend_from_slice(&data)
                })
                .await
                .map(|()| all)
            } else {
                read_exact_body(&mut connection, &mut buffer, length).await
            };
            let Some(body) = body else {
                return;
            };
            shared.state().errors.push(format!(
                "{method} {path}: {}",
                String::from_utf8_lossy(&body)
            ));
            accepted(&mut connection).await
        };
        if !answered {
            return;
        }
    }
}

async fn accepted(connection: &mut TcpStream) -> bool {
    connection
        .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .is_ok()
}

/// Waits for an invocation and hands it out.
async fn next(connection: &mut TcpStream, shared: &Shared) -> bool {
    let pending = loop {
        let notified = shared.queued.notified();
        if let Some(pending) = shared.state().queue.pop_front() {
            break pending;
        }
        notified.await;
    };
    shared
        .state()
        .running
        .push((pending.request_id.clone(), pending.body));
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
         lambda-runtime-aws-request-id: {}\r\n\
         lambda-runtime-deadline-ms: {}\r\n\
         lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:000000000000:function:firehose\r\n\
         content-length: {}\r\n\r\n{}",
        pending.request_id,
        pending.deadline_ms,
        pending.event.len(),
        pending.event
    );
    connection.write_all(answer.as_bytes()).await.is_ok()
}

/// The next request head: method, path and headers (names lower-cased).
async fn read_head(
    connection: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Option<(String, String, Vec<(String, String)>)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(used)) = request.parse(buffer) {
            let method = request.method.unwrap_or_default().to_owned();
            let path = request.path.unwrap_or_default().to_owned();
            let headers = request
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            buffer.drain(..used);
            return Some((method, path, headers));
        }
        fill(connection, buffer).await?;
    }
}

async fn fill(connection: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    match connection.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

async fn read_exact_body(
    connection: &mut TcpStream,
    buffer: &mut Vec<u8>,
    length: usize,
) -> Option<Vec<u8>> {
    while buffer.len() < length {
        fill(connection, buffer).await?;
    }
    Some(buffer.drain(..length).collect())
}

/// Decodes a chunked body, handing each chunk's data on as it completes; reads the
/// trailers (the runtime's error report, if any) and the final empty line.
async fn read_chunked(
    connection: &mut TcpStream,
    buffer: &mut Vec<u8>,
    mut data: impl FnMut(Bytes),
) -> Option<()> {
    loop {
        let line_end = loop {
            if let Some(at) = buffer.windows(2).position(|w| w == b"\r\n") {
                break at;
            }
            fill(connection, buffer).await?;
        };
        let size_text = String::from_utf8_lossy(&buffer[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        buffer.drain(..line_end + 2);
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let at = loop {
                    if let Some(at) = buffer.windows(2).position(|w| w == b"\r\n") {
                        break at;
                    }
                    fill(connection, buffer).await?;
                };
                buffer.drain(..at + 2);
                if at == 0 {
                    return Some(());
                }
            }
        }
        while buffer.len() < size + 2 {
            fill(connection, buffer).await?;
        }
        data(Bytes::copy_from_slice(&buffer[..size]));
        buffer.drain(..size + 2);
    }
}
