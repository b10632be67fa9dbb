//! A loopback proxy that breaks the network on purpose and counts what crosses it.
//! One proxy serves every place a fault or a count is needed: between an SSE client
//! and the function (cut, stall, outage), and between the function and DynamoDB
//! Local (DynamoDB's throttling answers, 500s, dropped connections, delays, requests
//! counted by operation).
//!
//! Bytes pass through unchanged, as they come (an event stream is never buffered).
//! The proxy only reads the heads of the requests going up (HTTP/1.1, bodies sized by
//! `Content-Length`), to record each one and to decide, request by request, how it is
//! answered ([`Fault`]). Clients of both sides send a request only once the previous
//! answer is complete (no pipelining), so an answer made up here never overtakes one
//! still on its way.
//!
//! Why one file of about 500 lines: a connection's life (read a request head, decide
//! its fault, forward or answer, pump the answer back, count it) is one state machine
//! over one pair of sockets, and every fault is a branch of it; split across files,
//! a reader would follow one request through all of them.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Notify};

/// How the proxy answers each request from now on (connections already open
/// included, from their next request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it.
    None,
    /// Forward it, and hold its answer this long before passing it on.
    Delay(Duration),
    /// Read it, then hold the connection open and silent until [`Proxy::cut_all`] or
    /// the proxy is dropped.
    Stall,
    /// 400 `ProvisionedThroughputExceededException`, as DynamoDB answers.
    ProvisionedThroughputExceeded,
    /// 400 `ThrottlingException`, as DynamoDB answers.
    Throttling,
    /// 500 `InternalServerError`, as DynamoDB answers.
    ServerError,
    /// Read it, then close the connection without answering.
    DropConnection,
    /// 400 `TransactionInProgressException`, as DynamoDB answers a resend of a
    /// transaction (same `ClientRequestToken`) that is still running.
    TransactionInProgress,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When its head arrived.
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// DynamoDB's operation, from `X-Amz-Target` (`Query`, `GetItem`...); `?` without one.
    pub operation: String,
    /// How it was answered.
    pub fault: Fault,
}

pub struct Proxy {
    /// `http://127.0.0.1:PORT`: where clients connect instead of the upstream.
    pub base: String,
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    /// `host:port` of the upstream.
    upstream: String,
    state: Mutex<State>,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
    /// Bumped to stall every open connection.
    stall: watch::Sender<u64>,
    down: Notify,
    up: Notify,
}

struct State {
    fault: Fault,
    /// Per operation: the faults of its next requests, before the standing one.
    scripts: BTreeMap<String, VecDeque<Fault>>,
    seen: Vec<Seen>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, its data is
        // still a list of requests and a fault, fine to go on with.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Proxy {
    /// A proxy on a free loopback port in front of `upstream` (`http://HOST:PORT`).
    pub async fn start(upstream: &str) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: upstream
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            state: Mutex::new(State {
                fault: Fault::None,
                scripts: BTreeMap::new(),
                seen: Vec::new(),
            }),
            cut: watch::channel(0).0,
            stall: watch::channel(0).0,
            down: Notify::new(),
            up: Notify::new(),
        });
        let task = tokio::spawn(accept(listener, addr, shared.clone()));
        Ok(Proxy {
            base: format!("http://{addr}"),
            port: addr.port(),
            shared,
            task,
        })
    }

    /// How each request is answered from now on.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.state().fault = fault;
    }

    /// How the next requests of one DynamoDB `operation` (`TransactWriteItems`...) are
    /// answered, one fault each, in order; after them, the standing fault again. It
    /// replaces what was left of that operation's script (an empty one clears it).
    pub fn script(&self, operation: &str, faults: impl IntoIterator<Item = Fault>) {
        self.shared
            .state()
            .scripts
            .insert(operation.to_owned(), faults.into_iter().collect());
    }

    /// Every request seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.state().seen.clone()
    }

    /// How many requests were seen so far.
    pub fn count(&self) -> usize {
        self.shared.state().seen.len()
    }

    /// Requests seen so far, by operation.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for seen in &self.shared.state().seen {
            *counts.entry(seen.operation.clone()).or_default() += 1;
        }
        counts
    }

    /// How many `METHOD PATH...` requests were seen (the path counted by its prefix,
    /// so with any query string).
    pub fn requests_to(&self, method: &str, path_prefix: &str) -> usize {
        self.shared
            .state()
            .seen
            .iter()
            .filter(|seen| seen.method == method && seen.path.starts_with(path_prefix))
            .count()
    }

    /// Closes every open connection, both ways.
    pub fn cut_all(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// Every open connection stops carrying bytes but stays open.
    pub fn stall_all(&self) {
        self.shared.stall.send_modify(|n| *n += 1);
    }

    /// The upstream goes away for `how_long`: open connections are cut and new ones
    /// refused (nothing listens on the port), then it comes back on the same port.
    pub async fn outage(&self, how_long: Duration) {
        self.shared.down.notify_one();
        self.cut_all();
        tokio::time::sleep(how_long).await;
        self.shared.up.notify_one();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_all();
    }
}

async fn accept(mut listener: TcpListener, addr: std::net::SocketAddr, shared: Arc<Shared>) {
    loop {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((client, _)) = accepted {
                        tokio::spawn(connection(client, shared.clone()));
                    }
                }
                () = shared.down.notified() => break,
            }
        }
        drop(listener);
        shared.up.notified().await;
        listener = loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
    }
}

/// One client connection, until it ends, is cut, or (stalled) is cut.
async fn connection(client: TcpStream, shared: Arc<Shared>) {
    let mut cut = shared.cut.subscribe();
    let mut stall = shared.stall.subscribe();
    // Pinned out here, so that a stall stops polling it while its sockets stay open.
    let serve = serve(client, &shared);
    tokio::pin!(serve);
    tokio::select! {
        () = &mut serve => {}
        _ = cut.changed() => {}
        _ = stall.changed() => {
            // Both sockets open and silent until cut (or the proxy goes).
            let _ = cut.changed().await;
        }
    }
}

/// How the requests side of a connection ended.
enum Ending {
    /// The client is done sending: let the answers on their way finish.
    Sent,
    /// Close the connection now, both ways.
    Close,
}

async fn serve(client: TcpStream, shared: &Shared) {
    let _ = client.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    // Answers reach the client from the upstream and from the proxy itself.
    let client_write = tokio::sync::Mutex::new(client_write);
    // The upstream connection is opened at the first request forwarded; its reading
    // half goes to the answers side then.
    let (upstream_tx, upstream_rx) = oneshot::channel();
    // A delay for the next answer (Fault::Delay), set as its request goes up.
    let delay = Mutex::new(None);
    let requests = requests(client_read, &client_write, upstream_tx, &delay, shared);
    let answers = answers(upstream_rx, &client_write, &delay);
    tokio::pin!(requests, answers);
    tokio::select! {
        ending = &mut requests => {
            if let Ending::Sent = ending {
                answers.await;
            }
        }
        () = &mut answers => {
            // The upstream closed: so did we, towards the client; it leaves next.
            let _ = requests.await;
        }
    }
}

/// How the proxy answers a request it does not forward.
enum Answer {
    /// This status line and JSON body.
    Canned(&'static str, &'static str),
    /// None: the connection is closed.
    Close,
    /// None: the connection stays open and silent.
    Hold,
}

/// A request head, as far as the proxy cares.
struct Head {
    method: String,
    path: String,
    operation: String,
    body_len: usize,
    chunked: bool,
    /// Its length in bytes.
    len: usize,
}

/// The head at the start of `buffer`: `Ok(None)` while incomplete, `Err` when it is
/// not HTTP the proxy can follow.
fn parse_head(buffer: &[u8]) -> Result<Option<Head>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buffer)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let value = |name: &str| {
        request
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .and_then(|header| std::str::from_utf8(header.value).ok())
            .map(str::trim)
    };
    let operation = value("x-amz-target")
        .and_then(|target| target.rsplit('.').next())
        .unwrap_or("?")
        .to_owned();
    let body_len = value("content-length")
        .and_then(|length| length.parse().ok())
        .unwrap_or(0);
    let chunked = value("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    Ok(Some(Head {
        method: request.method.unwrap_or("?").to_owned(),
        path: request.path.unwrap_or("?").to_owned(),
        operation,
        body_len,
        chunked,
        len,
    }))
}

/// Reads more of the client's bytes into `buffer`; false at the end of them.
async fn fill(client: &mut OwnedReadHalf, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 64 * 1024];
    match client.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// The requests side: reads each request, records it, and forwards it or answers it
/// as the fault of the moment says.
async fn requests(
    mut client: OwnedReadHalf,
    client_write: &tokio::sync::Mutex<OwnedWriteHalf>,
    upstream_tx: oneshot::Sender<OwnedReadHalf>,
    delay: &Mutex<Option<Duration>>,
    shared: &Shared,
) -> Ending {
    let mut upstream_tx = Some(upstream_tx);
    let mut upstream: Option<OwnedWriteHalf> = None;
    let mut buffer = Vec::new();
    // False once the bytes can no longer be followed as requests (not HTTP, or a
    // chunked body): from then on they pass through uncounted.
    let mut following = true;
    loop {
        let head = if following {
            match parse_head(&buffer) {
                Ok(Some(head)) => Some(head),
                Ok(None) => None,
                Err(_) => {
                    following = false;
                    None
                }
            }
        } else {
            None
        };
        let Some(head) = head else {
            if following || buffer.is_empty() {
                if !fill(&mut client, &mut buffer).await {
                    break;
                }
                continue;
            }
            // Not followed: forward what came as it is.
            let Some(server) = connect(&mut upstream, &mut upstream_tx, shared).await else {
                return Ending::Close;
            };
            if server.write_all(&buffer).await.is_err() {
                return Ending::Close;
            }
            buffer.clear();
            continue;
        };

        let fault = {
            let mut state = shared.state();
            let standing = state.fault;
            let fault = state
                .scripts
                .get_mut(&head.operation)
                .and_then(VecDeque::pop_front)
                .unwrap_or(standing);
            state.seen.push(Seen {
                at: Instant::now(),
                method: head.method,
                path: head.path,
                operation: if head.chunked {
                    format!("{} (chunked, count unreliable)", head.operation)
                } else {
                    head.operation
                },
                fault,
            });
            fault
        };
        if head.chunked {
            following = false;
        }
        let body_len = if head.chunked { 0 } else { head.body_len };

        let answer = match fault {
            Fault::None | Fault::Delay(_) => {
                let Some(server) = connect(&mut upstream, &mut upstream_tx, shared).await else {
                    // The upstream is away: so are we.
                    return Ending::Close;
                };
                if let Fault::Delay(hold) = fault {
                    *delay.lock().unwrap_or_else(|p| p.into_inner()) = Some(hold);
                }
                // The head and the body, as they come.
                let mut left = head.len + body_len;
                loop {
                    let now = left.min(buffer.len());
                    if now > 0 && server.write_all(&buffer[..now]).await.is_err() {
                        return Ending::Close;
                    }
                    buffer.drain(..now);
                    left -= now;
                    if left == 0 {
                        break;
                    }
                    if !fill(&mut client, &mut buffer).await {
                        return Ending::Sent;
                    }
                }
                continue;
            }
            Fault::Stall => Answer::Hold,
            Fault::DropConnection => Answer::Close,
            Fault::ProvisionedThroughputExceeded => Answer::Canned(
                "400 Bad Request",
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded. (test proxy)"}"#,
            ),
            Fault::Throttling => Answer::Canned(
                "400 Bad Request",
                r#"{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Rate of requests exceeds the allowed throughput. (test proxy)"}"#,
            ),
            Fault::ServerError => Answer::Canned(
                "500 Internal Server Error",
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error (test proxy)"}"#,
            ),
            Fault::TransactionInProgress => Answer::Canned(
                "400 Bad Request",
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionInProgressException","message":"The transaction with the given request token is already in progress. (test proxy)"}"#,
            ),
        };
        // Answered here: the request is read in full (a socket closed with bytes
        // unread would be reset, not closed) and goes no further.
        while buffer.len() < head.len + body_len {
            if !fill(&mut client, &mut buffer).await {
                return Ending::Close;
            }
        }
        buffer.drain(..head.len + body_len);
        let (status, payload) = match answer {
            Answer::Canned(status, payload) => (status, payload),
            Answer::Close => return Ending::Close,
            Answer::Hold => {
                // Held open, unanswered, until cut.
                std::future::pending::<()>().await;
                return Ending::Close;
            }
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nx-amzn-requestid: test-proxy\r\n\r\n{payload}",
            payload.len()
        );
        if client_write
            .lock()
            .await
            .write_all(answer.as_bytes())
            .await
            .is_err()
        {
            return Ending::Close;
        }
    }
    if let Some(server) = upstream.as_mut() {
        let _ = server.shutdown().await;
    }
    Ending::Sent
}

/// The upstream connection's writing half, opened (and its reading half handed to the
/// answers side) on first use; `None` when the upstream cannot be reached.
async fn connect<'a>(
    upstream: &'a mut Option<OwnedWriteHalf>,
    upstream_tx: &mut Option<oneshot::Sender<OwnedReadHalf>>,
    shared: &Shared,
) -> Option<&'a mut OwnedWriteHalf> {
    if upstream.is_none() {
        let server = TcpStream::connect(&shared.upstream).await.ok()?;
        let _ = server.set_nodelay(true);
        let (read, write) = server.into_split();
        upstream_tx.take()?.send(read).ok()?;
        *upstream = Some(write);
    }
    upstream.as_mut()
}

/// The answers side: the upstream's bytes to the client, as they come.
async fn answers(
    upstream: oneshot::Receiver<OwnedReadHalf>,
    client_write: &tokio::sync::Mutex<OwnedWriteHalf>,
    delay: &Mutex<Option<Duration>>,
) {
    let Ok(mut server) = upstream.await else {
        return;
    };
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match server.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let hold = delay.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(hold) = hold {
            tokio::time::sleep(hold).await;
        }
        if client_write
            .lock()
            .await
            .write_all(&chunk[..n])
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = client_write.lock().await.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, body: &str) -> String {
        format!(
            "POST / HTTP/1.1\r\nhost: x\r\nx-amz-target: DynamoDB_20120810.{target}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// An upstream that answers every request with an empty 200, over keep-alive.
    async fn upstream() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        while let Ok(Some(head)) = parse_head(&buffer) {
                            if buffer.len() < head.len + head.body_len {
                                break;
                            }
                            buffer.drain(..head.len + head.body_len);
                            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if socket.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    async fn connect(proxy: &Proxy) -> TcpStream {
        TcpStream::connect(("127.0.0.1", proxy.port))
            .await
            .expect("connect")
    }

    /// Sends `request` in pieces of `step` bytes and reads its answer.
    async fn exchange(socket: &mut TcpStream, request: &str, step: usize) -> String {
        for piece in request.as_bytes().chunks(step) {
            socket.write_all(piece).await.expect("write");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut got = String::new();
        let mut chunk = [0u8; 4096];
        while !(got.ends_with('}') || got.ends_with("ok")) {
            let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk))
                .await
                .expect("an answer in time")
                .expect("read");
            assert!(n > 0, "closed early after {got:?}");
            got.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
        got
    }

    #[tokio::test]
    async fn counts_requests_split_anywhere() {
        let upstream = upstream().await;
        let stream = format!(
            "{}{}{}",
            request("Query", "{\"a\":\"\\r\\n\\r\\n\"}"),
            request("GetItem", "{}"),
            request("Query", "")
        );
        for step in [1, 2, 3, 7, 64, stream.len()] {
            let proxy = Proxy::start(&upstream).await.expect("proxy");
            let mut socket = connect(&proxy).await;
            // All three in one go, cut into pieces of `step` bytes: a head may end
            // in the same piece as the body before it.
            let mut got = exchange(&mut socket, &stream, step).await;
            let mut chunk = [0u8; 1024];
            while got.matches("200 OK").count() < 3 {
                let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk))
                    .await
                    .expect("answers in time")
                    .expect("read");
                assert!(n > 0, "closed early after {got:?}");
                got.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
            let operations: Vec<String> = proxy.seen().into_iter().map(|s| s.operation).collect();
            assert_eq!(
                operations,
                ["Query", "GetItem", "Query"],
                "chunks of {step}"
            );
            assert_eq!(proxy.counts()["Query"], 2);
            assert_eq!(proxy.requests_to("POST", "/"), 3);
        }
    }

    #[tokio::test]
    async fn a_script_answers_the_next_requests_of_one_operation_then_the_standing_fault() {
        let proxy = Proxy::start(&upstream().await).await.expect("proxy");
        let mut socket = connect(&proxy).await;
        proxy.script(
            "TransactWriteItems",
            [Fault::TransactionInProgress, Fault::ServerError],
        );
        let query = exchange(&mut socket, &request("Query", "{}"), 5).await;
        assert!(query.starts_with("HTTP/1.1 200 OK"), "{query}");
        let first = exchange(&mut socket, &request("TransactWriteItems", "{}"), 5).await;
        assert!(first.contains("TransactionInProgressException"), "{first}");
        let second = exchange(&mut socket, &request("TransactWriteItems", "{}"), 5).await;
        assert!(second.starts_with("HTTP/1.1 500"), "{second}");
        let third = exchange(&mut socket, &request("TransactWriteItems", "{}"), 5).await;
        assert!(third.starts_with("HTTP/1.1 200 OK"), "{third}");
        let faults: Vec<Fault> = proxy.seen().into_iter().map(|s| s.fault).collect();
        assert_eq!(
            faults,
            [
                Fault::None,
                Fault::TransactionInProgress,
                Fault::ServerError,
                Fault::None
            ]
        );
    }

    #[tokio::test]
    async fn answers_with_the_fault_of_the_moment() {
        let proxy = Proxy::start(&upstream().await).await.expect("proxy");
        let mut socket = connect(&proxy).await;
        proxy.set_fault(Fault::Throttling);
        let got = exchange(&mut socket, &request("Query", "{}"), 5).await;
        assert!(got.starts_with("HTTP/1.1 400 Bad Request"), "{got}");
        assert!(got.contains("ThrottlingException"), "{got}");
        proxy.set_fault(Fault::ServerError);
        let got = exchange(&mut socket, &request("Query", "{}"), 64).await;
        assert!(got.starts_with("HTTP/1.1 500"), "{got}");
        proxy.set_fault(Fault::Delay(Duration::from_millis(300)));
        let started = Instant::now();
        let got = exchange(&mut socket, &request("GetItem", "{}"), 64).await;
        assert!(got.ends_with("ok"), "{got}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        let faults: Vec<Fault> = proxy.seen().into_iter().map(|s| s.fault).collect();
        assert_eq!(
            faults,
            [
                Fault::Throttling,
                Fault::ServerError,
                Fault::Delay(Duration::from_millis(300))
            ]
        );
    }

    #[tokio::test]
    async fn drops_or_holds_a_request_and_cuts_on_demand() {
        let proxy = Proxy::start(&upstream().await).await.expect("proxy");
        let mut chunk = [0u8; 1024];

        proxy.set_fault(Fault::DropConnection);
        let mut socket = connect(&proxy).await;
        socket
            .write_all(request("PutItem", "{}").as_bytes())
            .await
            .expect("write");
        // Closed, not reset: the request was read in full first.
        let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk))
            .await
            .expect("closed in time");
        assert_eq!(read.expect("a clean close"), 0);

        proxy.set_fault(Fault::Stall);
        let mut socket = connect(&proxy).await;
        socket
            .write_all(request("Query", "{}").as_bytes())
            .await
            .expect("write");
        let silent =
            tokio::time::timeout(Duration::from_millis(300), socket.read(&mut chunk)).await;
        assert!(silent.is_err(), "a stalled request is not answered");
        proxy.cut_all();
        let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk))
            .await
            .expect("cut in time");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

        let faults: Vec<Fault> = proxy.seen().into_iter().map(|s| s.fault).collect();
        assert_eq!(faults, [Fault::DropConnection, Fault::Stall]);
    }
}
