//! How bounties are printed: a readable line on a terminal, JSON lines otherwise.

use std::io::{self, IsTerminal, Write};

use firehose_client::money::Money;
use firehose_client::{Bounty, Change};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    JsonLines,
}

impl Format {
    /// JSON lines when asked, or when stdout is a pipe or a file.
    pub fn choose(json: bool) -> Self {
        if json || !io::stdout().is_terminal() {
            Format::JsonLines
        } else {
            Format::Human
        }
    }
}

/// Writes to stdout; a closed stdout (`| head`) ends the command quietly.
pub struct Printer {
    format: Format,
    out: io::Stdout,
}

/// Stdout was closed by the reader: stop without an error message.
#[derive(Debug)]
pub struct StdoutClosed;

impl Printer {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            out: io::stdout(),
        }
    }

    pub fn bounty(&mut self, bounty: &Bounty) -> Result<(), StdoutClosed> {
        let line = match self.format {
            Format::JsonLines => serde_json::to_string(bounty).unwrap_or_default(),
            Format::Human => human_line(bounty),
        };
        self.line(&line)
    }

    /// A change: as JSON, the bounty after it (its `version` and `status` say what
    /// changed, as on the wire); on a terminal, what happened, then the bounty's line.
    pub fn change(&mut self, change: &Change) -> Result<(), StdoutClosed> {
        let line = match self.format {
            Format::JsonLines => serde_json::to_string(change.bounty()).unwrap_or_default(),
            Format::Human => change_line(change),
        };
        self.line(&line)
    }

    fn line(&mut self, line: &str) -> Result<(), StdoutClosed> {
        let mut out = self.out.lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|_| StdoutClosed)
    }
}

/// `  1,200.50 USD  python   Fix flaky test  #pytest #ci  due 2026-12-22  id 01M8…`
pub fn human_line(bounty: &Bounty) -> String {
    let tags: Vec<String> = bounty.tags.iter().map(|t| format!("#{t}")).collect();
    let due = bounty.deadline.get(..10).unwrap_or(&bounty.deadline);
    let mut line = format!(
        "{:>16}  {:<12} {}",
        Money(bounty.budget_cents, &bounty.currency).to_string(),
        bounty.category,
        bounty.title
    );
    if !tags.is_empty() {
        line.push_str("  ");
        line.push_str(&tags.join(" "));
    }
    line.push_str(&format!("  due {due}  id {}", bounty.id));
    line
}

/// `closed (awarded) v4  <the bounty's line>`
pub fn change_line(change: &Change) -> String {
    let bounty = change.bounty();
    let what = match (change, bounty.close_reason) {
        (Change::Closed(_), Some(reason)) => format!("closed ({reason})"),
        _ => change.kind().to_owned(),
    };
    format!("{what:<18} v{:<3} {}", bounty.version, human_line(bounty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_human_line_shows_money_category_title_tags_deadline_and_id() {
        let bounty = sample();
        assert_eq!(
            human_line(&bounty),
            "    1,200.50 USD  python       Fix flaky test  #pytest #ci  due 2026-12-22  id 01ABC"
        );
    }

    #[test]
    fn a_change_line_says_what_happened_and_the_version() {
        let mut bounty = sample();
        bounty.version = 4;
        bounty.status = "closed".into();
        bounty.close_reason = Some(firehose_client::CloseReason::Awarded);
        let line = change_line(&Change::Closed(bounty.clone()));
        assert!(
            line.starts_with("closed (awarded)   v4   ") && line.ends_with(&human_line(&bounty)),
            "{line}"
        );
        bounty.version = 2;
        assert!(change_line(&Change::Updated(bounty)).starts_with("updated            v2   "));
    }

    fn sample() -> Bounty {
        Bounty {
            id: "01ABC".into(),
            title: "Fix flaky test".into(),
            description: String::new(),
            category: "python".into(),
            budget_cents: 120_050,
            currency: "USD".into(),
            tags: vec!["pytest".into(), "ci".into()],
            deadline: "2026-12-22T00:00:00.000Z".into(),
            created_at: "2026-11-22T00:00:00.000Z".into(),
            status: "open".into(),
            version: 1,
            updated_at: "2026-11-22T00:00:00.000Z".into(),
            closed_at: None,
            close_reason: None,
        }
    }
}
