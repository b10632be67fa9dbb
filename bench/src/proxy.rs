//! A counting TCP forwarder between the function and DynamoDB Local: it passes every
//! byte through unchanged and counts HTTP requests by operation (`X-Amz-Target`), so
//! the benchmark knows exactly how many DynamoDB calls a stream makes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::BoxError;

#[derive(Clone)]
pub struct CountingProxy {
    pub addr: SocketAddr,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl CountingProxy {
    pub async fn start(upstream: SocketAddr) -> Result<CountingProxy, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = CountingProxy {
            addr: listener.local_addr()?,
            counts: Arc::default(),
        };
        let counts = proxy.counts.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counts = counts.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        forward(client, server, counts).await;
                    }
                });
            }
        });
        Ok(proxy)
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen so far, by operation.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

async fn forward(client: TcpStream, server: TcpStream, counts: Arc<Mutex<BTreeMap<String, u64>>>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    });
    let mut parser = RequestParser::default();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match client_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let operations = parser.feed(&buffer[..n]);
        if !operations.is_empty() {
            if let Ok(mut counts) = counts.lock() {
                for operation in operations {
                    *counts.entry(operation).or_default() += 1;
                }
            }
        }
        if server_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = server_write.shutdown().await;
    let _ = answers.await;
}

/// Splits an HTTP/1.1 request stream into requests (head, then `Content-Length` bytes
/// of body; the AWS SDK sends DynamoDB's JSON bodies with a length, never chunked).
#[derive(Default)]
struct RequestParser {
    head: Vec<u8>,
    body_left: usize,
}

impl RequestParser {
    /// Feeds bytes; returns the operation of every request whose head completed.
    fn feed(&mut self, mut data: &[u8]) -> Vec<String> {
        let mut operations = Vec::new();
        loop {
            let skip = self.body_left.min(data.len());
            self.body_left -= skip;
            data = &data[skip..];
            if data.is_empty() {
                return operations;
            }
            // Look for the end of the head only in what is new, plus 3 bytes before it.
            let searched_from = self.head.len().saturating_sub(3);
            self.head.extend_from_slice(data);
            let Some(end) = find(&self.head[searched_from..], b"\r\n\r\n") else {
                return operations;
            };
            let end = searched_from + end + 4;
            let consumed_now = end - (self.head.len() - data.len());
            let (operation, length, chunked) = parse_head(&self.head[..end]);
            operations.push(if chunked {
                format!("{operation} (chunked, count unreliable)")
            } else {
                operation
            });
            self.body_left = length;
            self.head.clear();
            data = &data[consumed_now..];
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(head: &[u8]) -> (String, usize, bool) {
    let text = String::from_utf8_lossy(head);
    let mut operation = "unknown".to_owned();
    let mut length = 0;
    let mut chunked = false;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "x-amz-target" => {
                operation = value.rsplit('.').next().unwrap_or(value).to_owned();
            }
            "content-length" => length = value.parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    (operation, length, chunked)
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

    #[test]
    fn counts_requests_split_anywhere() {
        let stream = format!(
            "{}{}{}",
            request("Query", "{\"a\":\"\\r\\n\\r\\n\"}"),
            request("GetItem", "{}"),
            request("Query", "")
        );
        for step in [1, 2, 3, 7, 64, stream.len()] {
            let mut parser = RequestParser::default();
            let mut seen = Vec::new();
            for chunk in stream.as_bytes().chunks(step) {
                seen.extend(parser.feed(chunk));
            }
            assert_eq!(seen, ["Query", "GetItem", "Query"], "chunks of {step}");
        }
    }
}
