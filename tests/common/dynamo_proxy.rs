//! A loopback HTTP proxy between the function and DynamoDB Local: it forwards every
//! request, counts them (with their operation, from `X-Amz-Target`), and on demand
//! answers them with DynamoDB's throttling errors, with 500s, or by dropping the
//! connection without an answer.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the proxy answers, from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward to DynamoDB Local.
    None,
    /// 400 `ProvisionedThroughputExceededException`.
    ProvisionedThroughputExceeded,
    /// 400 `ThrottlingException`.
    Throttling,
    /// 500 `InternalServerError`.
    ServerError,
    /// Read the request, then close the connection without answering.
    DropConnection,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    /// `Query`, `GetItem`, `PutItem`...
    pub operation: String,
    /// The fault it was answered with.
    pub fault: Fault,
}

#[derive(Debug)]
struct State {
    fault: Fault,
    seen: Vec<Seen>,
}

pub struct DynamoProxy {
    pub port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl DynamoProxy {
    /// Listens on a free loopback port and forwards to `upstream` (http://host:port).
    pub async fn start(upstream: &str) -> DynamoProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let state = Arc::new(Mutex::new(State {
            fault: Fault::None,
            seen: Vec::new(),
        }));
        let upstream = upstream.trim_end_matches('/').to_owned();
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let state = shared.clone();
                let client = client.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, state, client, upstream).await;
                });
            }
        });
        DynamoProxy { port, state, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_fault(&self, fault: Fault) {
        self.state.lock().expect("lock").fault = fault;
    }

    /// Every request seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("lock").seen.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().expect("lock").seen.len()
    }
}

impl Drop for DynamoProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Head {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body_len: usize,
    consumed: usize,
}

fn parse_head(buffer: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let consumed = match request.parse(buffer).map_err(|e| e.to_string())? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    if headers.iter().any(|(name, _)| name == "transfer-encoding") {
        return Err("chunked requests are not supported by the test proxy".into());
    }
    let body_len = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
        .unwrap_or(0);
    Ok(Some(Head {
        method: request.method.unwrap_or("GET").to_owned(),
        path: request.path.unwrap_or("/").to_owned(),
        headers,
        body_len,
        consumed,
    }))
}

/// Serves one keep-alive connection, request by request.
async fn serve(
    mut socket: TcpStream,
    state: Arc<Mutex<State>>,
    client: reqwest::Client,
    upstream: String,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    loop {
        let head = loop {
            if let Some(head) = parse_head(&buffer).map_err(std::io::Error::other)? {
                break head;
            }
            let mut chunk = [0u8; 8192];
            let read = socket.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..read]);
        };
        while buffer.len() < head.consumed + head.body_len {
            let mut chunk = [0u8; 8192];
            let read = socket.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        let body = buffer[head.consumed..head.consumed + head.body_len].to_vec();
        buffer.drain(..head.consumed + head.body_len);

        let operation = head
            .headers
            .iter()
            .find(|(name, _)| name == "x-amz-target")
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .and_then(|target| target.rsplit('.').next())
            .unwrap_or("?")
            .to_owned();
        let fault = {
            let mut state = state.lock().expect("lock");
            let fault = state.fault;
            state.seen.push(Seen {
                at: Instant::now(),
                operation,
                fault,
            });
            fault
        };
        let (status, reason, content_type, payload) = match fault {
            Fault::DropConnection => return Ok(()),
            Fault::ProvisionedThroughputExceeded => (
                400,
                "Bad Request",
                "application/x-amz-json-1.0".to_owned(),
                br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded. (test proxy)"}"#.to_vec(),
            ),
            Fault::Throttling => (
                400,
                "Bad Request",
                "application/x-amz-json-1.0".to_owned(),
                br#"{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Rate of requests exceeds the allowed throughput. (test proxy)"}"#.to_vec(),
            ),
            Fault::ServerError => (
                500,
                "Internal Server Error",
                "application/x-amz-json-1.0".to_owned(),
                br#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error (test proxy)"}"#.to_vec(),
            ),
            Fault::None => {
                let mut request = client.request(
                    reqwest::Method::from_bytes(head.method.as_bytes()).expect("method"),
                    format!("{upstream}{}", head.path),
                );
                for (name, value) in &head.headers {
                    if !matches!(name.as_str(), "host" | "content-length" | "connection") {
                        request = request.header(name.as_str(), value.as_slice());
                    }
                }
                let response = match request.body(body).send().await {
                    Ok(response) => response,
                    // DynamoDB Local is away: so are we.
                    Err(_) => return Ok(()),
                };
                let status = response.status();
                let content_type = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("application/x-amz-json-1.0")
                    .to_owned();
                let extra: Vec<(String, String)> = response
                    .headers()
                    .iter()
                    .filter(|(name, _)| {
                        !matches!(
                            name.as_str(),
                            "content-type" | "content-length" | "transfer-encoding" | "connection"
                        )
                    })
                    .filter_map(|(name, v)| Some((name.to_string(), v.to_str().ok()?.to_owned())))
                    .collect();
                let payload = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                let mut head = format!(
                    "HTTP/1.1 {} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("OK"),
                    payload.len()
                );
                for (name, value) in extra {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                socket.write_all(head.as_bytes()).await?;
                socket.write_all(&payload).await?;
                continue;
            }
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nx-amzn-requestid: test-proxy\r\n\r\n",
            payload.len()
        );
        socket.write_all(head.as_bytes()).await?;
        socket.write_all(&payload).await?;
    }
}
