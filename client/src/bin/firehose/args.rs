//! The command line.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand, ValueEnum};
use firehose_client::{money, BountyPatch, Client, ClientError, CloseReason, Filter};

const AFTER_HELP: &str = "\
Environment:
  FIREHOSE_URL      base URL of the firehose (instead of --url)
  FIREHOSE_API_KEY  publish key for `firehose publish`, `update` and `close`
  FIREHOSE_LOG      log filter for stderr (e.g. debug); default: errors only

Output: a readable line per bounty on a terminal; JSON lines (one bounty per line)
when stdout is not a terminal, or with --json. `watch` prints one line per change:
the bounty after it (its `version` and `status` say what changed).

Exit codes:
  0  success
  1  runtime error (network, server error, unexpected answer, 401/403/408/429)
  2  usage error: bad flags, or the server rejected the request as invalid (400, 404, 422...)
  3  --timeout passed before --max-results bounties arrived (before any bounty without
     --max-results); those that did arrive were printed. `watch`: before the bounty
     was closed or expired (or --max-changes changes arrived)
  4  no bounty with that id (404; watch, update, close)
  5  the bounty is closed or expired and can no longer change (409; update, close)

Examples:
  firehose subscribe --category python --min-budget 500
  firehose subscribe --category rust --max-results 1 --timeout 4m --json
  firehose backfill --tag pytest --limit 200
  FIREHOSE_API_KEY=... firehose publish --title 'Fix flaky test' --category python \\
      --budget 500 --deadline 7d --tag pytest
  firehose watch 01JF7Z...                 # its changes, until closed or expired
  FIREHOSE_API_KEY=... firehose update 01JF7Z... --budget 750 --deadline 14d
  FIREHOSE_API_KEY=... firehose close 01JF7Z... --reason awarded
  firehose mcp        # MCP server on stdio, for AI assistants";

/// Subscribe to, list and publish bounties on a firehose server.
#[derive(Debug, Parser)]
#[command(name = "firehose", version, after_long_help = AFTER_HELP, after_help = "Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 timeout, 4 no such bounty, 5 bounty closed. More: --help")]
pub struct Cli {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Connection {
    /// Base URL of the firehose, e.g. http://127.0.0.1:9000 or the Function URL.
    #[arg(long, global = true, env = "FIREHOSE_URL", value_name = "URL")]
    pub url: Option<String>,
}

impl Connection {
    pub fn client(&self) -> Result<Client, crate::exit::Failure> {
        let url = self.url.as_deref().ok_or_else(|| {
            crate::exit::Failure::usage(
                "no server: pass --url http://HOST:PORT or set FIREHOSE_URL",
            )
        })?;
        Client::new(url).map_err(|err: ClientError| err.into())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Wait for new bounties that match, printing each as it arrives (reconnects by itself).
    Subscribe(SubscribeArgs),
    /// List open bounties that match, newest first (follows pages up to --limit).
    Backfill(BackfillArgs),
    /// Publish a bounty (key from FIREHOSE_API_KEY).
    Publish(PublishArgs),
    /// Print the changes to one bounty as they happen, until it is closed or expires.
    Watch(WatchArgs),
    /// Change an open bounty you published (key from FIREHOSE_API_KEY).
    Update(UpdateArgs),
    /// Close an open bounty you published (key from FIREHOSE_API_KEY).
    Close(CloseArgs),
    /// Serve the MCP tools subscribe_bounties, list_bounties and watch_bounty on
    /// stdin/stdout.
    Mcp,
}

/// The filter shared by subscribe and backfill.
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Category slug; repeat it or give a comma list for any of several.
    #[arg(long = "category", value_name = "SLUG", value_delimiter = ',')]
    pub categories: Vec<String>,
    /// Minimum budget in money, e.g. 500 or 500.25 (converted to cents exactly).
    #[arg(long, value_name = "AMOUNT", value_parser = parse_money)]
    pub min_budget: Option<u64>,
    /// Tag slug; a bounty matches with at least one of the tags given.
    #[arg(long = "tag", value_name = "SLUG", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Only bounties whose deadline is after this: RFC 3339, or a duration from now (3d).
    #[arg(long, value_name = "WHEN", value_parser = parse_future_instant)]
    pub deadline_after: Option<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> Filter {
        Filter {
            categories: self.categories.clone(),
            min_budget_cents: self.min_budget,
            tags: self.tags.clone(),
            deadline_after: self.deadline_after.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Start from this time instead of now: RFC 3339, or a duration ago (10m, 2h).
    #[arg(long, value_name = "WHEN", value_parser = parse_past_instant)]
    pub since: Option<String>,
    /// Print up to this many bounties first that are already open (then stream).
    #[arg(long, value_name = "N", conflicts_with = "since")]
    pub backfill: Option<usize>,
    /// Stop after this many bounties (exit 0); with --include-changes, changes count.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_results: Option<u64>,
    /// Also print changes to matching bounties (updated, closed): as JSON, the bounty
    /// after the change; on a terminal, what happened, then the bounty's line.
    #[arg(long)]
    pub include_changes: bool,
    /// Give up after this long (exit 3 if --max-results bounties did not arrive), e.g. 30s, 4m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// The heartbeat interval to assume until the server announces its own; a stream
    /// silent for twice the interval is reconnected.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "15s")]
    pub heartbeat: Duration,
    /// JSON lines even on a terminal.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// At most this many bounties (pages of up to 100 are followed).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
    /// JSON lines even on a terminal.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The bounty as a JSON file ("-" for stdin), as the API takes it; instead of the flags.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["title", "description", "category", "budget", "currency", "tags", "deadline"])]
    pub file: Option<PathBuf>,
    #[arg(long, required_unless_present = "file")]
    pub title: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long, value_name = "SLUG", required_unless_present = "file")]
    pub category: Option<String>,
    /// Budget in money, e.g. 500 or 1,200.50 (converted to cents exactly).
    #[arg(long, value_name = "AMOUNT", value_parser = parse_money, required_unless_present = "file")]
    pub budget: Option<u64>,
    /// ISO 4217 code (the server's default: USD).
    #[arg(long, value_name = "CODE")]
    pub currency: Option<String>,
    /// Tag slug; repeat it or give a comma list.
    #[arg(long = "tag", value_name = "SLUG", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Deadline: RFC 3339, or a duration from now (7d).
    #[arg(long, value_name = "WHEN", value_parser = parse_future_instant, required_unless_present = "file")]
    pub deadline: Option<String>,
    /// Sending the same bounty again with the same key returns the first one.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// The publish key.
    #[arg(
        long = "api-key",
        env = "FIREHOSE_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// Print the bounty as JSON even on a terminal.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The bounty's id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Stop after this many changes (exit 0), even if the bounty is still open.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_changes: Option<u64>,
    /// Give up after this long (exit 3) if the bounty was not closed and did not expire
    /// (nor --max-changes changes arrived), e.g. 30s, 4m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// The heartbeat interval to assume until the server announces its own; a stream
    /// silent for twice the interval is reconnected.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "15s")]
    pub heartbeat: Duration,
    /// JSON lines even on a terminal.
    #[arg(long)]
    pub json: bool,
}

/// The publish key and idempotency key of `update` and `close`.
#[derive(Debug, Args)]
pub struct ChangeKeys {
    /// Sending the same change again with the same key returns the first answer.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// The key that published the bounty.
    #[arg(
        long = "api-key",
        env = "FIREHOSE_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// Print the bounty as JSON even on a terminal.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The bounty's id.
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub change: ChangeFields,
    #[command(flatten)]
    pub keys: ChangeKeys,
}

/// What `update` changes: at least one.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct ChangeFields {
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Budget in money, e.g. 500 or 1,200.50 (converted to cents exactly).
    #[arg(long, value_name = "AMOUNT", value_parser = parse_money)]
    pub budget: Option<u64>,
    /// Tag slug; repeat it or give a comma list. Replaces the bounty's tags.
    #[arg(long = "tag", value_name = "SLUG", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Remove every tag.
    #[arg(long, conflicts_with = "tags")]
    pub clear_tags: bool,
    /// Deadline: RFC 3339, or a duration from now (7d).
    #[arg(long, value_name = "WHEN", value_parser = parse_future_instant)]
    pub deadline: Option<String>,
}

impl ChangeFields {
    pub fn patch(&self) -> BountyPatch {
        BountyPatch {
            title: self.title.clone(),
            description: self.description.clone(),
            budget_cents: self.budget,
            tags: if self.clear_tags {
                Some(Vec::new())
            } else {
                (!self.tags.is_empty()).then(|| self.tags.clone())
            },
            deadline: self.deadline.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct CloseArgs {
    /// The bounty's id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Why: the work was done and paid (awarded), or the bounty is withdrawn (cancelled).
    #[arg(long, value_enum)]
    pub reason: Reason,
    #[command(flatten)]
    pub keys: ChangeKeys,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Reason {
    Awarded,
    Cancelled,
}

impl From<Reason> for CloseReason {
    fn from(reason: Reason) -> Self {
        match reason {
            Reason::Awarded => CloseReason::Awarded,
            Reason::Cancelled => CloseReason::Cancelled,
        }
    }
}

fn parse_money(text: &str) -> Result<u64, String> {
    money::parse_cents(text).map_err(|err| err.to_string())
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|err| format!("{err}: give a duration like 30s, 4m or 1h30m"))
}

fn parse_past_instant(text: &str) -> Result<String, String> {
    instant(text, |now, d| now.checked_sub(d))
}

fn parse_future_instant(text: &str) -> Result<String, String> {
    instant(text, |now, d| now.checked_add(d))
}

/// A duration becomes an instant relative to now; anything else must be RFC 3339 and is
/// passed on as written (the server is the judge of its range).
fn instant(
    text: &str,
    shift: impl Fn(SystemTime, Duration) -> Option<SystemTime>,
) -> Result<String, String> {
    if let Ok(duration) = humantime::parse_duration(text) {
        let at = shift(SystemTime::now(), duration).ok_or("duration out of range")?;
        return Ok(humantime::format_rfc3339_millis(at).to_string());
    }
    let looks_like_rfc3339 = text.len() >= 20
        && text
            .as_bytes()
            .get(10)
            .is_some_and(|b| matches!(b, b'T' | b't'))
        && humantime::parse_rfc3339_weak(&text[..19]).is_ok();
    if looks_like_rfc3339 {
        Ok(text.to_owned())
    } else {
        Err("give an RFC 3339 time like 2026-12-01T00:00:00Z, or a duration like 10m or 3d".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn subscribe_flags_become_a_filter_in_cents() {
        let cli = Cli::try_parse_from([
            "firehose",
            "subscribe",
            "--category",
            "python,rust",
            "--min-budget",
            "500.25",
            "--tag",
            "tokio",
            "--max-results",
            "2",
            "--timeout",
            "4m",
            "--url",
            "http://x",
        ])
        .unwrap();
        let Command::Subscribe(args) = cli.command else {
            panic!("subscribe expected")
        };
        let filter = args.filter.filter();
        assert_eq!(filter.categories, ["python", "rust"]);
        assert_eq!(filter.min_budget_cents, Some(50_025));
        assert_eq!(filter.tags, ["tokio"]);
        assert_eq!(args.max_results, Some(2));
        assert_eq!(args.timeout, Some(Duration::from_secs(240)));
        assert_eq!(cli.connection.url.as_deref(), Some("http://x"));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for argv in [
            vec!["firehose", "subscribe", "--min-budget", "5.001"],
            vec!["firehose", "subscribe", "--min-budget", "-5"],
            vec!["firehose", "subscribe", "--timeout", "soon"],
            vec!["firehose", "subscribe", "--since", "yesterday"],
            vec!["firehose", "subscribe", "--max-results", "0"],
            vec!["firehose", "publish", "--title", "x"],
            vec!["firehose", "update", "01ABC"],
            vec!["firehose", "update", "01ABC", "--tag", "a", "--clear-tags"],
            vec!["firehose", "close", "01ABC"],
            vec!["firehose", "close", "01ABC", "--reason", "bored"],
            vec!["firehose", "watch"],
            vec!["firehose", "watch", "01ABC", "--max-changes", "0"],
        ] {
            let err = Cli::try_parse_from(&argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}");
        }
    }

    #[test]
    fn update_flags_become_a_patch_with_only_what_was_given() {
        let cli = Cli::try_parse_from([
            "firehose", "update", "01ABC", "--budget", "750.5", "--tag", "a,b",
        ])
        .unwrap();
        let Command::Update(args) = cli.command else {
            panic!("update expected")
        };
        assert_eq!(args.id, "01ABC");
        assert_eq!(
            args.change.patch(),
            BountyPatch::new().budget_cents(75_050).tags(["a", "b"])
        );
        let cli = Cli::try_parse_from(["firehose", "update", "01ABC", "--clear-tags"]).unwrap();
        let Command::Update(args) = cli.command else {
            panic!("update expected")
        };
        assert_eq!(
            args.change.patch(),
            BountyPatch::new().tags(Vec::<String>::new())
        );
    }

    #[test]
    fn instants_are_rfc3339_or_relative() {
        assert_eq!(
            parse_past_instant("2026-05-07T22:14:00Z").unwrap(),
            "2026-05-07T22:14:00Z"
        );
        assert_eq!(
            parse_future_instant("2026-05-07T22:14:00.5+02:00").unwrap(),
            "2026-05-07T22:14:00.5+02:00"
        );
        let ago = parse_past_instant("10m").unwrap();
        let later = parse_future_instant("1d").unwrap();
        assert!(ago < later && ago.ends_with('Z'), "{ago} {later}");
        assert!(parse_future_instant("2026-05-07").is_err());
    }
}
