//! The live board (`GET /`) in a real browser: Debian's Chromium, headless, driven
//! through playwright-core by `tests/node/board-driver.cjs`, against the real function
//! under `cargo lambda watch` and DynamoDB Local. The driver only loads the page and
//! reads what it shows (the `data-*` attributes the page keeps for this); the
//! assertions are here.
//!
//! One browser, one page, one story, in order: the listing, a bounty published after
//! the load, a close and an update arriving over `include=changes`, the function
//! going away and coming back on the same port, and another filter from the form.
//!
//! `scripts/test` installs Chromium and playwright-core and exports
//! `FIREHOSE_TEST_CHROMIUM` and `FIREHOSE_NODE_MODULES`; without them this test fails
//! (it does not skip).

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{bounty_body, http, Function, TEST_KEY};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// The function's poll interval here; new bounties must show within two of them.
const POLL: Duration = Duration::from_millis(1000);

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this test through scripts/test, which installs Chromium and playwright-core")
    })
}

/// Chromium under playwright-core, one JSON command and answer per line.
struct Browser {
    node: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// Console errors, page errors and policy violations the driver reported.
    problems: Vec<String>,
}

impl Browser {
    async fn start() -> Browser {
        let chromium = required_env("FIREHOSE_TEST_CHROMIUM");
        let modules = required_env("FIREHOSE_NODE_MODULES");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node/board-driver.cjs");
        let mut node = tokio::process::Command::new("node")
            .arg(script)
            .env("FIREHOSE_TEST_CHROMIUM", chromium)
            .env("FIREHOSE_NODE_MODULES", modules)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed");
        let stdin = node.stdin.take().expect("stdin");
        let lines = BufReader::new(node.stdout.take().expect("stdout")).lines();
        Browser {
            node,
            stdin,
            lines,
            problems: Vec::new(),
        }
    }

    async fn send(&mut self, command: Value) -> Value {
        let mut line = command.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to the driver");
        let answer = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the driver did not answer {command} within 60 s"))
            .expect("read from the driver")
            .unwrap_or_else(|| panic!("the driver exited while answering {command}"));
        let answer: Value = serde_json::from_str(&answer)
            .unwrap_or_else(|err| panic!("the driver answered {answer:?}: {err}"));
        assert_eq!(answer["ok"], true, "the driver failed {command}: {answer}");
        if let Some(problems) = answer["problems"].as_array() {
            self.problems.extend(
                problems
                    .iter()
                    .map(|p| p.as_str().unwrap_or("?").to_owned()),
            );
        }
        answer
    }

    async fn open(&mut self, url: &str) -> Value {
        self.send(json!({"op": "open", "url": url})).await
    }

    /// Fills the filter form (`fields`: input id -> value), presses Apply; returns the
    /// URL of the page it loads.
    async fn apply(&mut self, fields: Value) -> String {
        let answer = self.send(json!({"op": "apply", "fields": fields})).await;
        answer["url"]
            .as_str()
            .expect("the new page's URL")
            .to_owned()
    }

    async fn click(&mut self, selector: &str) {
        self.send(json!({"op": "click", "selector": selector}))
            .await;
    }

    async fn board(&mut self) -> Board {
        let answer = self.send(json!({"op": "board"})).await;
        serde_json::from_value(answer["board"].clone())
            .unwrap_or_else(|err| panic!("the board's state {answer}: {err}"))
    }

    /// Reads the board until `done` holds; panics with the last state after `limit`.
    async fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        done: impl Fn(&Board) -> bool,
    ) -> Board {
        let deadline = Instant::now() + limit;
        loop {
            let board = self.board().await;
            if done(&board) {
                return board;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}; the board shows {board:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The problems reported so far, taken.
    fn take_problems(&mut self) -> Vec<String> {
        std::mem::take(&mut self.problems)
    }

    async fn quit(mut self) -> Vec<String> {
        self.send(json!({"op": "quit"})).await;
        let _ = tokio::time::timeout(Duration::from_secs(30), self.node.wait()).await;
        self.problems
    }
}

#[derive(Debug, serde::Deserialize)]
struct Board {
    connection: Option<String>,
    notice: Option<String>,
    form: Value,
    images: u64,
    /// Whether "Load older bounties" is offered.
    more: bool,
    cards: Vec<Card>,
}

#[derive(Debug, serde::Deserialize)]
struct Card {
    id: String,
    status: String,
    version: u64,
    close_reason: Option<String>,
    closed_class: bool,
    title: String,
    badge: String,
}

impl Board {
    fn ids(&self) -> Vec<&str> {
        self.cards.iter().map(|card| card.id.as_str()).collect()
    }

    fn card(&self, id: &str) -> Option<(usize, &Card)> {
        self.cards
            .iter()
            .enumerate()
            .find(|(_, card)| card.id == id)
    }

    fn state(&self) -> &str {
        self.connection.as_deref().unwrap_or("")
    }
}

async fn patch(function: &Function, id: &str, body: Value) -> Value {
    let response = http()
        .patch(function.url(&format!("/api/v1/tasks/{id}")))
        .bearer_auth(TEST_KEY)
        .json(&body)
        .send()
        .await
        .expect("PATCH request");
    let status = response.status().as_u16();
    let bounty: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "PATCH {body} answered {status}: {bounty}");
    bounty
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_lists_streams_changes_and_shows_the_connection() {
    let poll_ms = POLL.as_millis().to_string();
    let mut function = Function::on_shared("board", &[("POLL_INTERVAL_MS", &poll_ms)]).await;

    // Before the page loads: two that match its filter (one titled with markup, which
    // must show as text), one that does not.
    let older = function
        .publish(&bounty_body(
            "Port the parser",
            "python",
            50_000,
            &["parsing"],
        ))
        .await;
    let markup = "<img src=x onerror=\"document.title='pwned'\"> <b>& more</b>";
    let newer = function
        .publish(&bounty_body(markup, "python", 60_000, &[]))
        .await;
    let elsewhere = function
        .publish(&bounty_body("Tune the allocator", "rust", 70_000, &[]))
        .await;

    let mut browser = Browser::start().await;
    let opened = browser.open(&function.url("/?category=python")).await;
    assert_eq!(opened["status"], 200, "{opened}");
    let headers = &opened["headers"];
    assert_eq!(
        headers["content-type"], "text/html; charset=utf-8",
        "{opened}"
    );
    assert!(
        headers["content-security-policy"]
            .as_str()
            .is_some_and(|csp| csp.contains("connect-src 'self'")),
        "{opened}"
    );

    // The listing, newest first, then live: the stream opened from its cursor.
    let board = browser
        .wait_for("the listing, then live", Duration::from_secs(30), |board| {
            board.cards.len() == 2 && board.state() == "live"
        })
        .await;
    assert_eq!(board.ids(), [newer.as_str(), older.as_str()], "{board:#?}");
    assert!(board.card(&elsewhere).is_none(), "{board:#?}");
    assert_eq!(board.cards[0].title, markup, "rendered as text");
    assert_eq!(board.images, 0, "no bounty text became markup");
    assert_eq!(
        board.form["category"], "python",
        "the form shows the URL's filter"
    );
    assert!(board
        .cards
        .iter()
        .all(|card| card.status == "open" && card.version == 1));
    assert_eq!(board.notice, None, "{board:#?}");
    let problems = browser.take_problems();
    assert!(problems.is_empty(), "while loading: {problems:?}");

    // Published after the load: at the top within two poll intervals. One of another
    // category first, which must not show.
    let unseen = function
        .publish(&bounty_body("Profile the build", "rust", 80_000, &[]))
        .await;
    let published = Instant::now();
    let fresh = function
        .publish(&bounty_body(
            "Write the changelog",
            "python",
            90_000,
            &["docs"],
        ))
        .await;
    let board = browser
        .wait_for("the new bounty at the top", 2 * POLL, |board| {
            board.cards.first().is_some_and(|card| card.id == fresh)
        })
        .await;
    let shown_after = published.elapsed();
    assert_eq!(
        board.ids(),
        [fresh.as_str(), newer.as_str(), older.as_str()],
        "{board:#?}"
    );
    assert!(board.card(&unseen).is_none(), "{board:#?}");
    eprintln!("a new bounty showed {shown_after:?} after its publish answered");

    // Closed by its publisher: marked closed in place, with the reason.
    let closed = patch(
        &function,
        &older,
        json!({"status": "closed", "close_reason": "awarded"}),
    )
    .await;
    assert_eq!(closed["version"], 2, "{closed}");
    let board = browser
        .wait_for("the close", Duration::from_secs(10), |board| {
            board
                .card(&older)
                .is_some_and(|(_, card)| card.status == "closed")
        })
        .await;
    let (position, card) = board.card(&older).expect("still shown");
    assert_eq!(position, 2, "in place: {board:#?}");
    assert_eq!(card.version, 2);
    assert_eq!(card.close_reason.as_deref(), Some("awarded"));
    assert!(card.closed_class, "{card:?}");
    assert!(card.badge.contains("awarded"), "{card:?}");

    // Changed: the card changes in place, keeping its position.
    let renamed = patch(
        &function,
        &fresh,
        json!({"title": "Write the release notes"}),
    )
    .await;
    assert_eq!(renamed["version"], 2, "{renamed}");
    let board = browser
        .wait_for("the update", Duration::from_secs(10), |board| {
            board
                .card(&fresh)
                .is_some_and(|(_, card)| card.title == "Write the release notes")
        })
        .await;
    assert_eq!(
        board.ids(),
        [fresh.as_str(), newer.as_str(), older.as_str()],
        "in place: {board:#?}"
    );
    assert_eq!(board.card(&fresh).expect("shown").1.version, 2);
    assert_eq!(board.state(), "live");
    let problems = browser.take_problems();
    assert!(problems.is_empty(), "while streaming: {problems:?}");

    // The function goes away: the page says so.
    function.stop();
    let board = browser
        .wait_for(
            "the connection state to leave live",
            Duration::from_secs(15),
            |board| board.state() != "live",
        )
        .await;
    assert!(
        ["reconnecting", "offline", "connecting"].contains(&board.state()),
        "{board:#?}"
    );
    eprintln!(
        "with the function stopped the board shows {:?}",
        board.state()
    );

    // It comes back on the same port: the page is live again by itself, and resumed
    // where it was: what is published now shows, and nothing shows twice.
    function.resume().await;
    browser
        .wait_for("live again", Duration::from_secs(60), |board| {
            board.state() == "live"
        })
        .await;
    let after = function
        .publish(&bounty_body("Fix the flaky test", "python", 40_000, &[]))
        .await;
    let board = browser
        .wait_for(
            "a bounty published after the restart",
            Duration::from_secs(15),
            |board| board.cards.first().is_some_and(|card| card.id == after),
        )
        .await;
    assert_eq!(
        board.ids(),
        [
            after.as_str(),
            fresh.as_str(),
            newer.as_str(),
            older.as_str()
        ],
        "{board:#?}"
    );
    assert_eq!(board.card(&older).expect("shown").1.status, "closed");

    // The form changes the filter through the page's URL: a new page, a new listing.
    // Empty fields stay out of the URL (the API refuses empty values).
    let url = browser
        .apply(json!({"f-category": "rust, python", "f-min-budget": "70000"}))
        .await;
    assert!(
        url.ends_with("/?category=rust&category=python&min_budget_cents=70000"),
        "{url}"
    );
    let board = browser
        .wait_for(
            "the new filter's listing",
            Duration::from_secs(30),
            |board| board.state() == "live" && board.cards.len() == 3,
        )
        .await;
    assert_eq!(
        board.ids(),
        [fresh.as_str(), unseen.as_str(), elsewhere.as_str()],
        "open, at least 70000 cents, newest first: {board:#?}"
    );
    assert_eq!(board.form["category"], "rust, python", "{board:#?}");
    assert_eq!(board.form["min_budget_cents"], "70000", "{board:#?}");
    assert!(!board.more, "one page holds them all: {board:#?}");

    // More than a page (the board asks for 50): the rest on request, older ones below.
    let mut batch = Vec::new();
    for n in 0..50 {
        let title = format!("Batch bounty {n}");
        batch.push(
            function
                .publish(&bounty_body(&title, "python", 75_000, &[]))
                .await,
        );
    }
    let board = browser
        .wait_for("the batch, streamed in", Duration::from_secs(30), |board| {
            board.cards.len() == 53
        })
        .await;
    assert_eq!(board.cards[0].id, batch[49], "{:?}", board.ids());
    browser.open(&url).await;
    let board = browser
        .wait_for("the first page", Duration::from_secs(30), |board| {
            board.state() == "live" && board.cards.len() == 50
        })
        .await;
    assert!(board.more, "a next page is offered");
    let mut newest_first: Vec<&str> = batch.iter().rev().map(String::as_str).collect();
    assert_eq!(board.ids(), newest_first, "the first page is the batch");
    browser.click("#more").await;
    let board = browser
        .wait_for("the next page", Duration::from_secs(30), |board| {
            board.cards.len() == 53 && !board.more
        })
        .await;
    newest_first.extend([fresh.as_str(), unseen.as_str(), elsewhere.as_str()]);
    assert_eq!(board.ids(), newest_first, "older ones below, each once");

    // While the function was away the browser logs the stream it lost (cut mid-body)
    // and its refused reconnects; nothing else: no policy violation, no script error,
    // at any time.
    let problems = browser.quit().await;
    let unexpected: Vec<&String> = problems
        .iter()
        .filter(|problem| {
            ![
                "net::ERR_CONNECTION_REFUSED",
                "net::ERR_INCOMPLETE_CHUNKED_ENCODING",
            ]
            .iter()
            .any(|outage| problem.contains(outage))
        })
        .collect();
    assert!(unexpected.is_empty(), "{problems:?}");
}
