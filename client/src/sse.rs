//! An incremental Server-Sent Events parser (the WHATWG event-stream format).
//!
//! Bytes go in as they arrive, in chunks of any size; out come [`SseItem`]s. Unlike
//! parsers that hand out only dispatched events, it reports a `retry:` field the moment
//! it is read (the firehose sends `retry:` in a frame of its own, without `data:`), and
//! comments (the heartbeat) too.
//!
//! Memory is bounded: a line, or the data of one event, longer than
//! [`MAX_FRAME_BYTES`] is an error ([`SseError::TooLong`]), never unbounded growth. The
//! largest legitimate frame is one bounty, at most ~64 KiB of JSON, so 1 MiB leaves a
//! wide margin while a server or proxy that sends an endless line cannot exhaust the
//! client's memory; the caller treats the error as a broken connection.

/// The longest line, and the most data one event may gather (see the module docs).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// The stream broke the parser's limits; the connection cannot be trusted further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("a line or event longer than {limit} bytes: the stream is broken")]
    TooLong { limit: usize },
}

/// One thing the stream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A dispatched event. `id` is the stream's last event id at dispatch time (an `id:`
    /// persists across events, as in the spec); `event` defaults to `message`.
    Event {
        event: String,
        data: String,
        id: Option<String>,
    },
    /// A valid `retry:` field, in milliseconds.
    Retry(u64),
    /// A comment line (`: heartbeat`), without the colon.
    Comment(String),
    /// An `id:` field was read in a frame that carried no data (so dispatched nothing):
    /// the last event id changed anyway, as the spec says.
    IdOnly(String),
}

#[derive(Debug)]
pub struct SseParser {
    /// The most bytes a line, or one event's data, may hold.
    max: usize,
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` that starts the next one belongs to it.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    id_changed: bool,
    last_id: Option<String>,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_limit(MAX_FRAME_BYTES)
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that allows lines and event data of at most `max` bytes.
    pub fn with_limit(max: usize) -> Self {
        Self {
            max,
            line: Vec::new(),
            after_cr: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            id_changed: false,
            last_id: None,
        }
    }

    /// Feeds a chunk; returns what it completed. After an error the parser's state is
    /// undefined: drop it with the connection.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseItem>, SseError> {
        let too_long = SseError::TooLong { limit: self.max };
        let mut out = Vec::new();
        for &byte in chunk {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            let ended = match byte {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out)
                }
                _ if self.line.len() >= self.max => false,
                _ => {
                    self.line.push(byte);
                    true
                }
            };
            if !ended {
                return Err(too_long);
            }
        }
        Ok(out)
    }

    /// Handles one complete line; `false` when the event's data would outgrow the limit.
    fn end_line(&mut self, out: &mut Vec<SseItem>) -> bool {
        let raw = std::mem::take(&mut self.line);
        let line = String::from_utf8_lossy(&raw);
        if line.is_empty() {
            self.dispatch(out);
            return true;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(SseItem::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_owned(),
            ));
            return true;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                // Many short data lines without a blank line between them grow one
                // event without bound just as one endless line would.
                if self.data.len() + value.len() + 1 > self.max {
                    return false;
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => {
                self.last_id = (!value.is_empty()).then(|| value.to_owned());
                self.id_changed = true;
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    out.push(SseItem::Retry(ms));
                }
            }
            _ => {}
        }
        true
    }

    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        let id_changed = std::mem::take(&mut self.id_changed);
        if !std::mem::take(&mut self.has_data) {
            if id_changed {
                out.push(SseItem::IdOnly(self.last_id.clone().unwrap_or_default()));
            }
            return;
        }
        out.push(SseItem::Event {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str, id: Option<&str>) -> SseItem {
        SseItem::Event {
            event: name.into(),
            data: data.into(),
            id: id.map(Into::into),
        }
    }

    const STREAM: &str = "retry: 2000\n\nevent: connected\nid: c0\ndata: {\"a\":1}\n\n: heartbeat\n\nevent: bounty\nid: c1\ndata: {\"id\":\"b1\"}\n\nevent: checkpoint\nid: c2\ndata: {\"cursor\":\"c2\"}\n\n";

    fn expected() -> Vec<SseItem> {
        vec![
            SseItem::Retry(2000),
            event("connected", "{\"a\":1}", Some("c0")),
            SseItem::Comment("heartbeat".into()),
            event("bounty", "{\"id\":\"b1\"}", Some("c1")),
            event("checkpoint", "{\"cursor\":\"c2\"}", Some("c2")),
        ]
    }

    #[test]
    fn parses_the_firehose_frames() {
        assert_eq!(
            SseParser::new().push(STREAM.as_bytes()).unwrap(),
            expected()
        );
    }

    #[test]
    fn any_chunking_gives_the_same_items() {
        for size in [1, 2, 3, 7, 16] {
            let mut parser = SseParser::new();
            let items: Vec<_> = STREAM
                .as_bytes()
                .chunks(size)
                .flat_map(|chunk| parser.push(chunk).unwrap())
                .collect();
            assert_eq!(items, expected(), "chunks of {size}");
        }
    }

    #[test]
    fn accepts_crlf_and_cr_line_ends_even_split_across_chunks() {
        let mut parser = SseParser::new();
        let mut items = parser.push(b"data: one\r").unwrap();
        items.extend(parser.push(b"\n\r\ndata: two\r\r").unwrap());
        assert_eq!(
            items,
            vec![event("message", "one", None), event("message", "two", None)]
        );
    }

    #[test]
    fn joins_data_lines_and_keeps_the_last_id_across_events() {
        let mut parser = SseParser::new();
        let items = parser
            .push(b"id: 7\ndata: a\ndata: b\n\ndata:c\n\n")
            .unwrap();
        assert_eq!(
            items,
            vec![
                event("message", "a\nb", Some("7")),
                event("message", "c", Some("7"))
            ]
        );
    }

    #[test]
    fn an_id_without_data_is_reported_and_bad_retry_ignored() {
        let mut parser = SseParser::new();
        let items = parser
            .push(b"id: x\n\nretry: soon\nretry\n\ndata\n\n")
            .unwrap();
        assert_eq!(
            items,
            vec![SseItem::IdOnly("x".into()), event("message", "", Some("x"))]
        );
    }

    #[test]
    fn a_half_frame_is_not_dispatched_and_split_utf8_survives() {
        let mut parser = SseParser::new();
        let text = "data: caf\u{e9}\n\n".as_bytes();
        let (a, b) = text.split_at(9); // inside the two-byte é
        assert!(parser.push(a).unwrap().is_empty());
        assert_eq!(
            parser.push(b).unwrap(),
            vec![event("message", "caf\u{e9}", None)]
        );
        assert!(parser.push(b"data: unfinished\n").unwrap().is_empty());
    }

    #[test]
    fn an_endless_line_is_an_error_not_unbounded_growth() {
        let mut parser = SseParser::with_limit(16);
        assert_eq!(
            parser.push(b"data: 0123456789\n\n").unwrap(),
            vec![event("message", "0123456789", None)]
        );
        // 17 bytes without a line end, fed in pieces: the limit holds across chunks.
        assert!(parser.push(b"data: 01234").unwrap().is_empty());
        assert_eq!(parser.push(b"567890"), Err(SseError::TooLong { limit: 16 }));
    }

    #[test]
    fn many_short_data_lines_cannot_grow_one_event_without_bound() {
        let mut parser = SseParser::with_limit(16);
        let lines = b"data: 0123456789\ndata: 0123\n"; // 15 bytes of data so far
        assert!(parser.push(lines).unwrap().is_empty());
        assert_eq!(
            parser.push(b"data: 0\n"),
            Err(SseError::TooLong { limit: 16 })
        );
    }

    #[test]
    fn the_default_limit_allows_a_large_bounty() {
        let data = "x".repeat(256 * 1024);
        let frame = format!("event: bounty\ndata: {data}\n\n");
        let items = SseParser::new().push(frame.as_bytes()).unwrap();
        assert_eq!(items, vec![event("bounty", &data, None)]);
    }
}
