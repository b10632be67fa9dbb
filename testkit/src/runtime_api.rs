//! A Lambda runtime API of our own, for what `cargo lambda watch` cannot show or gets
//! in the way of: a process serving `AWS_LAMBDA_MAX_CONCURRENCY` invocations at once
//! (Lambda Managed Instances) with no emulator relaying every streamed byte (the
//! benchmark), and invocations with a real deadline (the emulator sends 600,000 ms
//! after the epoch; `tests/deadline_http.rs`).
//!
//! The caller queues Function URL invocations ([`function_url_event`]); the function
//! takes them with `GET .../invocation/next`; [`RuntimeApi::invoke`] returns once the
//! response's prelude (status, headers) has arrived, with its body streaming on. As on
//! Lambda, the response `POST` is answered only when the body ends, so each open
//! stream keeps a runtime worker busy. HTTP/1.1 by hand, like the proxy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::Utc;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// Errors of the runtime API, as text for a test or the benchmark to report.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The deadline of an invocation when none is asked for: Lambda's longest, 900 s, so
/// streams end at their own cap.
pub const LONGEST_TIMEOUT: Duration = Duration::from_secs(900);

/// The answer of one invocation: the status and headers of its metadata prelude and
/// its body as it streams.
pub struct Answer {
    pub status: u16,
    pub headers: Value,
    pub body: mpsc::Receiver<Bytes>,
}

impl Answer {
    /// The body as a stream of byte pieces, as an HTTP client would hand them over.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Result<Bytes, BoxError>> {
        futures_util::stream::unfold(self.body, |mut body| async move {
            body.recv().await.map(|piece| (Ok(piece), body))
        })
    }

    /// The whole body.
    pub async fn collect(mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(piece) = self.body.recv().await {
            all.extend_from_slice(&piece);
        }
        all
    }
}

type Reply = oneshot::Sender<Result<Answer, String>>;

struct Pending {
    event: String,
    timeout: Duration,
    reply: Reply,
}

struct ApiState {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: Mutex<HashMap<String, Reply>>,
    /// `GET .../invocation/next` calls received (the first one ends the init).
    nexts: AtomicU64,
    /// Invocation ids handed out.
    ids: AtomicU64,
    init_error: Mutex<Option<String>>,
}

/// A Lambda runtime API on a loopback port, played by the benchmark.
pub struct RuntimeApi {
    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub addr: std::net::SocketAddr,
    state: Arc<ApiState>,
    sender: mpsc::UnboundedSender<Pending>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> Result<RuntimeApi, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(ApiState {
            queue: tokio::sync::Mutex::new(receiver),
            in_flight: Mutex::new(HashMap::new()),
            nexts: AtomicU64::new(0),
            ids: AtomicU64::new(0),
            init_error: Mutex::new(None),
        });
        let shared = state.clone();
        let server = tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                let _ = connection.set_nodelay(true);
                tokio::spawn(serve_runtime(Conn::new(connection), shared.clone()));
            }
        });
        Ok(RuntimeApi {
            addr,
            state,
            sender,
            server,
        })
    }

    /// How many times the runtime asked for an invocation so far.
    pub fn nexts(&self) -> u64 {
        self.state.nexts.load(Ordering::Relaxed)
    }

    /// What the function reported to `/runtime/init/error`, if anything.
    pub fn init_error(&self) -> Option<String> {
        lock(&self.state.init_error).clone()
    }

    /// Queues one invocation with `event` and waits for its response to start (the
    /// metadata prelude); the body keeps streaming into the answer.
    pub async fn invoke(&self, event: String) -> Result<Answer, BoxError> {
        self.invoke_due(event, LONGEST_TIMEOUT).await
    }

    /// [`RuntimeApi::invoke`], with the invocation's deadline `timeout` after it is
    /// handed to the function.
    pub async fn invoke_due(&self, event: String, timeout: Duration) -> Result<Answer, BoxError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Pending {
                event,
                timeout,
                reply,
            })
            .map_err(|_| "the runtime API has stopped")?;
        match answer.await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(format!("the invocation failed: {error}").into()),
            Err(_) => Err("the invocation was dropped without an answer".into()),
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A Function URL invocation event (payload format 2.0) for one HTTP request from
/// 127.0.0.1.
pub fn function_url_event(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> String {
    let now = Utc::now();
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut header_map = serde_json::Map::new();
    for (name, value) in [
        ("host", "local.lambda-url.us-east-1.on.aws"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "127.0.0.1"),
    ]
    .iter()
    .chain(headers)
    {
        header_map.insert(name.to_ascii_lowercase(), Value::from(*value));
    }
    let mut query_map = serde_json::Map::new();
    for (name, value) in form_urlencoded_pairs(query) {
        // Repeated parameters arrive comma-joined, as a Function URL sends them.
        match query_map.get_mut(&name) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                query_map.insert(name, Value::from(value));
            }
        }
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": header_map,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": "local.lambda-url.us-east-1.on.aws",
            "domainPrefix": "bench",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "firehose-testkit"
            },
            "requestId": ulid::Ulid::new().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "isBase64Encoded": false
    });
    if !query_map.is_empty() {
        event["queryStringParameters"] = Value::Object(query_map);
    }
    if let Some(body) = body {
        event["body"] = Value::from(body);
    }
    event.to_string()
}

/// `a=1&b=x%2Cy` as decoded pairs (the benchmark's queries are plain ASCII).
fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A buffered HTTP/1.1 connection from the runtime.
struct Conn {
    stream: TcpStream,
    buffer: BytesMut,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buffer: BytesMut::with_capacity(16 * 1024),
        }
    }

    /// Reads more bytes into the buffer; false at the end of the connection.
    async fn fill(&mut self) -> std::io::Result<bool> {
        let n = self.stream.read_buf(&mut self.buffer).await?;
        Ok(n > 0)
    }

    /// The next request head (request line and headers), or None at a clean end.
    async fn head(&mut self) -> std::io::Result<Option<Head>> {
        loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                let raw = self.buffer.split_to(end + 4);
                let text = String::from_utf8_lossy(&raw[..end]).into_owned();
                let mut lines = text.split("\r\n");
                let request_line = lines.next().unwrap_or_default().to_owned();
                let headers = lines
                    .filter_map(|line| line.split_once(':'))
                    .map(|(name, value)| {
                        (name.trim().to_ascii_lowercase(), value.trim().to_owned())
                    })
                    .collect();
                return Ok(Some(Head {
                    request_line,
                    headers,
                }));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    async fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(end) = find(&self.buffer, b"\r\n") {
                let raw = self.buffer.split_to(end + 2);
                return Ok(String::from_utf8_lossy(&raw[..end]).into_owned());
            }
            if !self.fill().await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    async fn exactly(&mut self, n: usize) -> std::io::Result<Bytes> {
        while self.buffer.len() < n {
            if !self.fill().await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buffer.split_to(n).freeze())
    }

    /// The next piece of a request body: a chunk (chunked) or what has arrived
    /// (`remaining` bytes left of a sized body); None at its end.
    async fn piece(&mut self, body: &mut BodyLeft) -> std::io::Result<Option<Bytes>> {
        match body {
            BodyLeft::Sized(0) | BodyLeft::Done => Ok(None),
            BodyLeft::Sized(left) => {
                if self.buffer.is_empty() && !self.fill().await? {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                let n = self.buffer.len().min(*left);
                *left -= n;
                Ok(Some(self.buffer.split_to(n).freeze()))
            }
            BodyLeft::Chunked => {
                let size_line = self.line().await?;
                let size = usize::from_str_radix(
                    size_line.split(';').next().unwrap_or_default().trim(),
                    16,
                )
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size_line:?}")))?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    while !self.line().await?.is_empty() {}
                    *body = BodyLeft::Done;
                    return Ok(None);
                }
                let chunk = self.exactly(size).await?;
                self.exactly(2).await?;
                Ok(Some(chunk))
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }
}

enum BodyLeft {
    Sized(usize),
    Chunked,
    Done,
}

struct Head {
    request_line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn body(&self) -> BodyLeft {
        if self
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            BodyLeft::Chunked
        } else {
            BodyLeft::Sized(
                self.header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

const ACCEPTED: &[u8] = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n{\"status\":\"OK\"}\n";

/// One connection of the runtime: requests one after another (no pipelining).
async fn serve_runtime(mut conn: Conn, state: Arc<ApiState>) {
    while let Ok(Some(head)) = conn.head().await {
        let mut parts = head.request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let outcome = if method == "GET" && path.ends_with("/invocation/next") {
            next_invocation(&mut conn, &state).await
        } else if method == "POST" && path.ends_with("/response") {
            let id = invocation_id(&path);
            take_response(&mut conn, &head, &state, &id).await
        } else if method == "POST" && path.ends_with("/error") {
            let mut body = head.body();
            let mut text = Vec::new();
            while let Ok(Some(piece)) = conn.piece(&mut body).await {
                text.extend_from_slice(&piece);
            }
            let text = String::from_utf8_lossy(&text).into_owned();
            if path.contains("/init/error") {
                *lock(&state.init_error) = Some(text);
            } else if let Some(reply) = lock(&state.in_flight).remove(&invocation_id(&path)) {
                let _ = reply.send(Err(text));
            }
            conn.write(ACCEPTED).await
        } else {
            let mut body = head.body();
            while let Ok(Some(_)) = conn.piece(&mut body).await {}
            conn.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await
        };
        if outcome.is_err() {
            return;
        }
    }
}

/// `/2018-06-01/runtime/invocation/{id}/response` -> `{id}`.
fn invocation_id(path: &str) -> String {
    let mut segments = path.rsplit('/');
    segments.next();
    segments.next().unwrap_or_default().to_owned()
}

/// Hands out the next queued invocation (waiting for one, as Lambda does).
async fn next_invocation(conn: &mut Conn, state: &ApiState) -> std::io::Result<()> {
    state.nexts.fetch_add(1, Ordering::Relaxed);
    let pending = {
        let mut queue = state.queue.lock().await;
        queue.recv().await
    };
    let Some(pending) = pending else {
        return Err(std::io::ErrorKind::BrokenPipe.into());
    };
    let id = format!("invocation-{}", state.ids.fetch_add(1, Ordering::Relaxed));
    lock(&state.in_flight).insert(id.clone(), pending.reply);
    let deadline_ms = Utc::now().timestamp_millis()
        + i64::try_from(pending.timeout.as_millis()).unwrap_or(i64::MAX / 2);
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
         lambda-runtime-aws-request-id: {id}\r\n\
         lambda-runtime-deadline-ms: {deadline_ms}\r\n\
         lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:000000000000:function:firehose\r\n\
         lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\n\
         content-length: {}\r\n\r\n",
        pending.event.len()
    );
    conn.write(answer.as_bytes()).await?;
    conn.write(pending.event.as_bytes()).await
}

/// Reads a response: streamed (a JSON prelude, eight NUL bytes, then the body, as
/// pieces arrive) or buffered (one JSON document). Answers 202 once the body has
/// ended, as Lambda does: the invocation is busy until then.
async fn take_response(
    conn: &mut Conn,
    head: &Head,
    state: &ApiState,
    id: &str,
) -> std::io::Result<()> {
    let reply = lock(&state.in_flight).remove(id);
    let streaming = head
        .header("lambda-runtime-function-response-mode")
        .is_some_and(|mode| mode.eq_ignore_ascii_case("streaming"));
    let mut body = head.body();
    let mut reply = reply;
    let mut prelude = Vec::new();
    let mut sink: Option<mpsc::Sender<Bytes>> = None;
    while let Some(piece) = conn.piece(&mut body).await? {
        if let Some(tx) = &sink {
            // A reader that went away no longer reads: the rest is dropped, as a
            // Function URL drops what a departed client no longer reads.
            if tx.send(piece).await.is_err() {
                sink = None;
                reply = None;
            }
            continue;
        }
        if !streaming || reply.is_none() {
            prelude.extend_from_slice(&piece);
            continue;
        }
        prelude.extend_from_slice(&piece);
        if let Some(end) = find(&prelude, &[0u8; 8]) {
            let meta: Value = serde_json::from_slice(&prelude[..end]).unwrap_or(Value::Null);
            let rest = Bytes::copy_from_slice(&prelude[end + 8..]);
            let (tx, rx) = mpsc::channel(256);
            if !rest.is_empty() {
                let _ = tx.send(rest).await;
            }
            if let Some(reply) = reply.take() {
                let _ = reply.send(Ok(Answer {
                    status: meta["statusCode"].as_u64().unwrap_or(200) as u16,
                    headers: meta["headers"].clone(),
                    body: rx,
                }));
            }
            sink = Some(tx);
            prelude.clear();
        }
    }
    if let Some(reply) = reply {
        // Buffered: `{"statusCode":..,"headers":..,"body":".."}`.
        let meta: Value = serde_json::from_slice(&prelude).unwrap_or(Value::Null);
        let (tx, rx) = mpsc::channel(1);
        if let Some(text) = meta["body"].as_str() {
            let _ = tx.send(Bytes::from(text.to_owned())).await;
        }
        drop(tx);
        let _ = reply.send(Ok(Answer {
            status: meta["statusCode"].as_u64().unwrap_or(502) as u16,
            headers: meta["headers"].clone(),
            body: rx,
        }));
    }
    drop(sink);
    conn.write(ACCEPTED).await
}
