//! An AWS-like front: a loopback HTTP proxy between clients and the function that
//! behaves, towards the function, like a Lambda Function URL in `RESPONSE_STREAM`
//! mode: when a client goes away, the function is not told. The front keeps reading
//! the response to its end (and throws it away), so the function's writes never fail
//! and a stream runs on until it ends by itself, as on AWS. `cargo lambda watch`
//! alone passes a disconnect on at once, which hides that.
//!
//! It records every exchange: the request's method, path and headers (a test marks
//! its requests with a header of its own to find them again), when the answer's head
//! came, when the client was found gone (a write to it failed), when the response
//! ended (the end of its body, or the function closing the connection), and the last
//! bytes of the body, so a test can ask "did stream X end, when, and how".
//!
//! HTTP/1.1 only, one request at a time per connection (no pipelining), request
//! bodies sized by `Content-Length`; response bodies by `Content-Length`, chunked, or
//! until the connection closes. Bytes pass through as they come.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};

/// How many bytes of each response body are kept for [`Exchange::tail`].
const TAIL_BYTES: usize = 16 * 1024;

/// One request and its response, as the front saw them.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// In order of arrival, from 0.
    pub id: usize,
    pub method: String,
    pub path: String,
    /// The request's headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// When the request's head arrived.
    pub started: Instant,
    /// The response's status, once its head came.
    pub status: Option<u16>,
    /// When the response's head came.
    pub answered: Option<Instant>,
    /// When a write to the client first failed: from then on the body was read and
    /// thrown away.
    pub client_gone: Option<Instant>,
    /// When the response ended: its body complete, or the function closed the
    /// connection.
    pub ended: Option<Instant>,
    /// The last bytes of the response body (de-chunked), up to 16 KiB.
    pub tail: Vec<u8>,
}

impl Exchange {
    /// The value of request header `name` (any case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The tail of the body as text (lossy).
    pub fn tail_text(&self) -> String {
        String::from_utf8_lossy(&self.tail).into_owned()
    }
}

/// A running front; stops (and cuts its connections) when dropped.
pub struct Front {
    /// `http://127.0.0.1:PORT`: where clients connect instead of the function.
    pub base: String,
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    /// `host:port` of the function.
    upstream: String,
    exchanges: Mutex<Vec<Exchange>>,
}

impl Shared {
    fn exchanges(&self) -> MutexGuard<'_, Vec<Exchange>> {
        // Nothing panics while holding the lock; if something did, the records are
        // still whole (each change is one assignment).
        self.exchanges
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, id: usize, change: impl FnOnce(&mut Exchange)) {
        if let Some(exchange) = self.exchanges().get_mut(id) {
            change(exchange);
        }
    }
}

impl Front {
    /// A front on a free loopback port for the function at `upstream`
    /// (`http://HOST:PORT`).
    pub async fn start(upstream: &str) -> io::Result<Front> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: upstream
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            exchanges: Mutex::new(Vec::new()),
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(connection(client, accepting.clone()));
            }
        });
        Ok(Front {
            base: format!("http://{addr}"),
            port: addr.port(),
            shared,
            task,
        })
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// Every exchange so far, in order of arrival.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.exchanges().clone()
    }

    /// The first exchange whose request carried header `name` with `value`.
    pub fn find(&self, name: &str, value: &str) -> Option<Exchange> {
        self.shared
            .exchanges()
            .iter()
            .find(|exchange| exchange.header(name) == Some(value))
            .cloned()
    }

    /// Waits up to `limit` for the response of the exchange marked `name: value` to
    /// end; the exchange as it is then (its `ended` still `None` if it did not).
    pub async fn wait_ended(&self, name: &str, value: &str, limit: Duration) -> Option<Exchange> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let exchange = self.find(name, value);
            let ended = exchange.as_ref().is_some_and(|e| e.ended.is_some());
            if ended || tokio::time::Instant::now() >= deadline {
                return exchange;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A request head, as far as the front cares.
struct RequestHead {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body_len: usize,
    /// Its length in bytes.
    len: usize,
}

fn parse_request(buffer: &[u8]) -> Result<Option<RequestHead>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buffer)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect();
    let body_len = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    Ok(Some(RequestHead {
        method: request.method.unwrap_or("?").to_owned(),
        path: request.path.unwrap_or("?").to_owned(),
        headers,
        body_len,
        len,
    }))
}

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    /// Until the connection closes.
    Close,
}

/// The status, framing and length of the response head at the start of `buffer`.
fn parse_response(
    buffer: &[u8],
    method: &str,
) -> Result<Option<(u16, Framing, usize)>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buffer)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let status = response.code.unwrap_or(0);
    let value = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let framing = if method == "HEAD" || status == 204 || status == 304 {
        Framing::Length(0)
    } else if value("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        Framing::Chunked
    } else if let Some(length) = value("content-length").and_then(|l| l.parse().ok()) {
        Framing::Length(length)
    } else {
        Framing::Close
    };
    Ok(Some((status, framing, len)))
}

/// Follows a chunked body byte by byte: where it ends, and its data.
#[derive(Debug, Default)]
struct Chunked {
    state: ChunkState,
    line: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// This many data bytes left in the chunk.
    Data(usize),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, until an empty one.
    Trailer,
    Done,
}

impl Chunked {
    /// Takes `bytes` of the body; appends their data to `data`. Returns how many bytes
    /// belonged to the body (all of them, unless it ended within them), or `None` if
    /// the framing is broken.
    fn feed(&mut self, bytes: &[u8], data: &mut Vec<u8>) -> Option<usize> {
        let mut at = 0;
        while at < bytes.len() && self.state != ChunkState::Done {
            match self.state {
                ChunkState::Data(left) => {
                    let take = left.min(bytes.len() - at);
                    data.extend_from_slice(&bytes[at..at + take]);
                    at += take;
                    self.state = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::Size | ChunkState::DataEnd | ChunkState::Trailer => {
                    self.line.push(bytes[at]);
                    at += 1;
                    if !self.line.ends_with(b"\r\n") {
                        if self.line.len() > 4096 {
                            return None;
                        }
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    let line = &line[..line.len() - 2];
                    self.state = match self.state {
                        ChunkState::Size => {
                            let size = std::str::from_utf8(line).ok()?;
                            let size = size.split(';').next()?.trim();
                            match usize::from_str_radix(size, 16).ok()? {
                                0 => ChunkState::Trailer,
                                n => ChunkState::Data(n),
                            }
                        }
                        ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
                        ChunkState::DataEnd => return None,
                        _ if line.is_empty() => ChunkState::Done,
                        _ => ChunkState::Trailer,
                    };
                }
                ChunkState::Done => {}
            }
        }
        Some(at)
    }
}

/// Keeps the last [`TAIL_BYTES`] of `tail`.
fn trim_tail(tail: &mut Vec<u8>) {
    if tail.len() > TAIL_BYTES {
        tail.drain(..tail.len() - TAIL_BYTES);
    }
}

/// One client connection: its requests in turn, each forwarded and its response read
/// to the end whatever the client does.
async fn connection(client: TcpStream, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let (mut client_read, client_write) = client.into_split();
    // `None` once a write to the client failed.
    let mut client_write = Some(client_write);
    let mut upstream: Option<TcpStream> = None;
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // A request head from the client.
        let head = loop {
            match parse_request(&buffer) {
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(_) => return,
            }
            match client_read.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        while buffer.len() < head.len + head.body_len {
            match client_read.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let request: Vec<u8> = buffer.drain(..head.len + head.body_len).collect();
        let id = {
            let mut exchanges = shared.exchanges();
            let id = exchanges.len();
            exchanges.push(Exchange {
                id,
                method: head.method.clone(),
                path: head.path,
                headers: head.headers,
                started: Instant::now(),
                status: None,
                answered: None,
                client_gone: None,
                ended: None,
                tail: Vec::new(),
            });
            id
        };
        if upstream.is_none() {
            match TcpStream::connect(&shared.upstream).await {
                Ok(server) => {
                    let _ = server.set_nodelay(true);
                    upstream = Some(server);
                }
                Err(_) => {
                    shared.update(id, |e| e.ended = Some(Instant::now()));
                    return;
                }
            }
        }
        let Some(server) = upstream.as_mut() else {
            return;
        };
        let complete = server.write_all(&request).await.is_ok()
            && respond(
                server,
                &mut client_write,
                &head.method,
                id,
                &shared,
                &mut chunk,
            )
            .await;
        if !complete || client_write.is_none() {
            // The function closed the connection, or the client is gone: nothing
            // more will come over this one.
            return;
        }
    }
}

/// Passes one response from `server` to the client (while it is there) and reads it
/// to its end either way. True when it ended by its framing and the connection can
/// carry the next request.
async fn respond(
    server: &mut TcpStream,
    client: &mut Option<OwnedWriteHalf>,
    method: &str,
    id: usize,
    shared: &Shared,
    chunk: &mut [u8],
) -> bool {
    let mut pending = Vec::new();
    let (framing, mut body) = loop {
        match parse_response(&pending, method) {
            Ok(Some((status, framing, len))) => {
                shared.update(id, |e| {
                    e.status = Some(status);
                    e.answered = Some(Instant::now());
                });
                let head: Vec<u8> = pending.drain(..len).collect();
                forward(client, &head, id, shared).await;
                break (framing, pending);
            }
            Ok(None) => {}
            Err(_) => {
                shared.update(id, |e| e.ended = Some(Instant::now()));
                return false;
            }
        }
        match server.read(chunk).await {
            Ok(0) | Err(_) => {
                shared.update(id, |e| e.ended = Some(Instant::now()));
                return false;
            }
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
    };
    let mut chunked = Chunked::default();
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => usize::MAX,
    };
    loop {
        // What of `body` belongs to this response, and its data.
        let mut data = Vec::new();
        let (used, finished) = match framing {
            Framing::Length(_) => {
                let used = left.min(body.len());
                data.extend_from_slice(&body[..used]);
                left -= used;
                (used, left == 0)
            }
            Framing::Chunked => match chunked.feed(&body, &mut data) {
                Some(used) => (used, chunked.state == ChunkState::Done),
                None => {
                    shared.update(id, |e| e.ended = Some(Instant::now()));
                    return false;
                }
            },
            Framing::Close => {
                data.extend_from_slice(&body);
                (body.len(), false)
            }
        };
        if used > 0 {
            forward(client, &body[..used], id, shared).await;
            shared.update(id, |e| {
                e.tail.extend_from_slice(&data);
                trim_tail(&mut e.tail);
            });
        }
        if finished {
            shared.update(id, |e| e.ended = Some(Instant::now()));
            return true;
        }
        body.clear();
        match server.read(chunk).await {
            Ok(0) | Err(_) => {
                shared.update(id, |e| e.ended = Some(Instant::now()));
                return false;
            }
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Writes `bytes` to the client if it is still there; the first failure marks it gone
/// (and the body goes on being read, unseen, as a Function URL does).
async fn forward(client: &mut Option<OwnedWriteHalf>, bytes: &[u8], id: usize, shared: &Shared) {
    let Some(writer) = client.as_mut() else {
        return;
    };
    if writer.write_all(bytes).await.is_err() {
        *client = None;
        shared.update(id, |e| e.client_gone = Some(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunked body in pieces of `step` bytes: the same data, the same end.
    #[test]
    fn follows_a_chunked_body_split_anywhere() {
        let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for step in 1..body.len() {
            let mut chunked = Chunked::default();
            let mut data = Vec::new();
            let mut used = 0;
            for piece in body.chunks(step) {
                used += chunked.feed(piece, &mut data).expect("well framed");
                if chunked.state == ChunkState::Done {
                    break;
                }
            }
            assert_eq!(data, b"hello, world", "pieces of {step}");
            assert_eq!(chunked.state, ChunkState::Done, "pieces of {step}");
            assert_eq!(used, body.len() - 4, "pieces of {step}: ends before NEXT");
        }
        let mut broken = Chunked::default();
        assert_eq!(broken.feed(b"zz\r\n", &mut Vec::new()), None);
    }

    /// An upstream that answers one request with a chunked body: "first" at once,
    /// "second" after `gap`, then the end.
    async fn slow_upstream(gap: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let _ = socket.read(&mut buffer).await;
                    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(b"5\r\nfirst\r\n").await;
                    tokio::time::sleep(gap).await;
                    let _ = socket.write_all(b"6\r\nsecond\r\n0\r\n\r\n").await;
                    // Held open: the end is the framing's, not a close.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                });
            }
        });
        format!("http://{addr}")
    }

    async fn request(front: &Front, mark: &str) -> TcpStream {
        let mut socket = TcpStream::connect(("127.0.0.1", front.port))
            .await
            .expect("connect");
        let request = format!("GET /s HTTP/1.1\r\nhost: x\r\nx-mark: {mark}\r\n\r\n");
        socket.write_all(request.as_bytes()).await.expect("write");
        socket
    }

    #[tokio::test]
    async fn reads_a_response_to_its_end_after_the_client_left_and_records_when() {
        let gap = Duration::from_millis(400);
        let front = Front::start(&slow_upstream(gap).await)
            .await
            .expect("front");
        // A client that stays sees the whole answer.
        let mut stays = request(&front, "stays").await;
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        while !got.ends_with(b"0\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(5), stays.read(&mut chunk))
                .await
                .expect("in time")
                .expect("read");
            assert!(n > 0);
            got.extend_from_slice(&chunk[..n]);
        }
        let stayed = front
            .wait_ended("x-mark", "stays", Duration::from_secs(5))
            .await
            .expect("recorded");
        assert_eq!(stayed.tail_text(), "firstsecond");
        assert_eq!(stayed.client_gone, None);

        // A client that leaves after the first bytes: the rest is still read, and the
        // end recorded when the upstream sent it, not when the client left.
        let mut leaves = request(&front, "leaves").await;
        let n = leaves.read(&mut chunk).await.expect("read");
        assert!(n > 0);
        drop(leaves);
        let left_at = Instant::now();
        let left = front
            .wait_ended("x-mark", "leaves", Duration::from_secs(5))
            .await
            .expect("recorded");
        let ended = left.ended.expect("ended");
        assert!(ended >= left_at + gap / 2, "read on after the client left");
        assert_eq!(left.status, Some(200));
        assert_eq!(left.tail_text(), "firstsecond");
        assert_eq!(left.header("X-Mark"), Some("leaves"));
        assert_eq!(front.exchanges().len(), 2);
    }
}
