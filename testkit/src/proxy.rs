//! A loopback TCP proxy in front of the function, to break the network on purpose:
//! cut every open connection, stall them (bytes stop, sockets stay open), or go away
//! for a while (connections refused). It also counts stream requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

const STREAM_REQUEST: &[u8] = b"GET /api/v1/bounties/stream";

pub struct Proxy {
    pub base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    target: SocketAddr,
    stream_requests: AtomicUsize,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
    /// Bumped to stall every open connection.
    stall: watch::Sender<u64>,
    down: Notify,
    up: Notify,
}

impl Proxy {
    /// A proxy on a free port in front of `target_base` (`http://127.0.0.1:PORT`).
    pub async fn start(target_base: &str) -> Proxy {
        let target: SocketAddr = target_base
            .trim_start_matches("http://")
            .parse()
            .expect("target is http://IP:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Shared {
            target,
            stream_requests: AtomicUsize::new(0),
            cut: watch::channel(0).0,
            stall: watch::channel(0).0,
            down: Notify::new(),
            up: Notify::new(),
        });
        let task = tokio::spawn(serve(listener, addr, shared.clone()));
        Proxy {
            base: format!("http://{addr}"),
            shared,
            task,
        }
    }

    /// How many `GET /api/v1/bounties/stream` requests went through.
    pub fn stream_requests(&self) -> usize {
        self.shared.stream_requests.load(Ordering::SeqCst)
    }

    /// Closes every open connection, both ways.
    pub fn cut_all(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// Every open connection stops carrying bytes but stays open.
    pub fn stall_all(&self) {
        self.shared.stall.send_modify(|n| *n += 1);
    }

    /// The server goes away for `how_long`: open connections are cut and new ones
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

async fn serve(mut listener: TcpListener, addr: SocketAddr, shared: Arc<Shared>) {
    loop {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((client, _)) = accepted {
                        tokio::spawn(pipe(client, shared.clone()));
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

async fn pipe(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.target).await else {
        return;
    };
    let mut cut = shared.cut.subscribe();
    let mut stall = shared.stall.subscribe();
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            let requests = chunk
                .windows(STREAM_REQUEST.len())
                .filter(|w| *w == STREAM_REQUEST)
                .count();
            shared.stream_requests.fetch_add(requests, Ordering::SeqCst);
            if server_write.write_all(chunk).await.is_err() {
                break;
            }
        }
    };
    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::select! {
        _ = async { tokio::join!(upstream, downstream) } => {}
        _ = cut.changed() => {}
        _ = stall.changed() => {
            // Hold both sockets open, silent, until cut (or the test ends).
            let _ = cut.changed().await;
        }
    }
}
