//! An incremental Server-Sent Events parser (the WHATWG event-stream format).
//!
//! Bytes go in as they arrive, in chunks of any size; out come [`SseItem`]s. Unlike
//! parsers that hand out only dispatched events, it reports a `retry:` field the moment
//! it is read (the firehose sends `retry:` in a frame of its own, without `data:`), and
//! comments (the heartbeat) too.

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

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` that starts the next one belongs to it.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    id_changed: bool,
    last_id: Option<String>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; returns what it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseItem> {
        let mut out = Vec::new();
        for &byte in chunk {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out);
                }
                _ => self.line.push(byte),
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<SseItem>) {
        let raw = std::mem::take(&mut self.line);
        let line = String::from_utf8_lossy(&raw);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(SseItem::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_owned(),
            ));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
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
        assert_eq!(SseParser::new().push(STREAM.as_bytes()), expected());
    }

    #[test]
    fn any_chunking_gives_the_same_items() {
        for size in [1, 2, 3, 7, 16] {
            let mut parser = SseParser::new();
            let items: Vec<_> = STREAM
                .as_bytes()
                .chunks(size)
                .flat_map(|chunk| parser.push(chunk))
                .collect();
            assert_eq!(items, expected(), "chunks of {size}");
        }
    }

    #[test]
    fn accepts_crlf_and_cr_line_ends_even_split_across_chunks() {
        let mut parser = SseParser::new();
        let mut items = parser.push(b"data: one\r");
        items.extend(parser.push(b"\n\r\ndata: two\r\r"));
        assert_eq!(
            items,
            vec![event("message", "one", None), event("message", "two", None)]
        );
    }

    #[test]
    fn joins_data_lines_and_keeps_the_last_id_across_events() {
        let mut parser = SseParser::new();
        let items = parser.push(b"id: 7\ndata: a\ndata: b\n\ndata:c\n\n");
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
        let items = parser.push(b"id: x\n\nretry: soon\nretry\n\ndata\n\n");
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
        assert!(parser.push(a).is_empty());
        assert_eq!(parser.push(b), vec![event("message", "caf\u{e9}", None)]);
        assert!(parser.push(b"data: unfinished\n").is_empty());
    }
}
