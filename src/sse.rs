//! Server-Sent Events framing. Knows the wire format and nothing else.

use bytes::Bytes;

/// One frame of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `retry: <ms>`: how long a browser waits before reconnecting.
    Retry(u64),
    /// `event:`, optional `id:`, and `data:` (JSON, never containing a raw newline).
    Event {
        event: &'static str,
        id: Option<String>,
        data: String,
    },
    /// A `: <text>` comment line, ignored by clients (used for heartbeats).
    Comment(&'static str),
}

impl Frame {
    pub fn event(event: &'static str, id: Option<String>, data: String) -> Self {
        Frame::Event { event, id, data }
    }

    /// The bytes on the wire, ending with the blank line that dispatches the event.
    pub fn encode(&self) -> Bytes {
        let text = match self {
            Frame::Retry(ms) => format!("retry: {ms}\n\n"),
            Frame::Comment(text) => format!(": {text}\n\n"),
            Frame::Event { event, id, data } => {
                let mut out = format!("event: {event}\n");
                if let Some(id) = id {
                    // An id with a line break or NUL would corrupt the stream; ours are base64.
                    let safe: String = id
                        .chars()
                        .filter(|c| !matches!(c, '\n' | '\r' | '\0'))
                        .collect();
                    out.push_str(&format!("id: {safe}\n"));
                }
                for line in data.split('\n') {
                    out.push_str("data: ");
                    out.push_str(line.trim_end_matches('\r'));
                    out.push('\n');
                }
                out.push('\n');
                out
            }
        };
        Bytes::from(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_each_kind() {
        assert_eq!(Frame::Retry(2000).encode(), "retry: 2000\n\n");
        assert_eq!(Frame::Comment("heartbeat").encode(), ": heartbeat\n\n");
        assert_eq!(
            Frame::event("bounty", Some("abc".into()), "{\"a\":1}".into()).encode(),
            "event: bounty\nid: abc\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            Frame::event("connected", None, "{}".into()).encode(),
            "event: connected\ndata: {}\n\n"
        );
    }

    #[test]
    fn multi_line_data_and_hostile_ids_stay_one_event() {
        assert_eq!(
            Frame::event("x", Some("a\nb\r".into()), "l1\r\nl2".into()).encode(),
            "event: x\nid: ab\ndata: l1\ndata: l2\n\n"
        );
    }
}
