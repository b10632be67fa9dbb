//! How bounties are printed: a readable line on a terminal, JSON lines otherwise.

use std::io::{self, IsTerminal, Write};

use firehose_client::money::Money;
use firehose_client::Bounty;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_human_line_shows_money_category_title_tags_deadline_and_id() {
        let bounty = Bounty {
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
        };
        assert_eq!(
            human_line(&bounty),
            "    1,200.50 USD  python       Fix flaky test  #pytest #ci  due 2026-12-22  id 01ABC"
        );
    }
}
