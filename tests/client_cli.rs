//! The `firehose` CLI binary against the real function: subscribe until N matches, the
//! timeout exit code, usage errors (local and the server's), publish; output both as
//! JSON lines (stdout not a terminal) and as readable lines (on a pseudo-terminal).
//! The bounty lifecycle: `watch` (each change, exit 0 at the close or for a closed
//! bounty, 4 for an unknown one, 3 at its timeout), `update` and `close` (5 once
//! closed), and `subscribe --include-changes`.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::cli::firehose_bin;
use common::{bounty_body, Function, TEST_KEY};
use serde_json::Value;
use tokio::process::Command;

fn firehose(f: &Function) -> Command {
    let mut command = Command::new(firehose_bin());
    command
        .env("FIREHOSE_URL", &f.base)
        .env_remove("FIREHOSE_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Publishes a match (and a near miss) every 300 ms until `child` exits; returns its
/// output and the ids of the matches published.
async fn feed_until_exit(
    f: &Function,
    child: tokio::process::Child,
) -> (std::process::Output, Vec<String>) {
    let mut output = Box::pin(child.wait_with_output());
    let mut matches = Vec::new();
    let mut n = 0;
    loop {
        tokio::select! {
            done = &mut output => return (done.expect("firehose ran"), matches),
            () = tokio::time::sleep(Duration::from_millis(300)) => {
                n += 1;
                assert!(n < 400, "the CLI never exited");
                // 499.99: one cent under --min-budget 500.
                f.publish(&bounty_body(&format!("near miss {n}"), "python", 49_999, &[])).await;
                matches.push(f.publish(&bounty_body(&format!("match {n}"), "python", 50_000, &["pytest"])).await);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_max_results_2_prints_two_json_lines_and_exits_0() {
    let f = Function::on_shared("cli-json", &[("POLL_INTERVAL_MS", "200")]).await;
    let child = firehose(&f)
        .args([
            "subscribe",
            "--category",
            "python",
            "--min-budget",
            "500",
            "--max-results",
            "2",
        ])
        .spawn()
        .expect("spawn firehose");
    let (output, matches) = feed_until_exit(&f, child).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is a JSON bounty"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for bounty in &lines {
        assert_eq!(bounty["category"], "python");
        assert_eq!(bounty["budget_cents"], 50_000);
        assert!(matches.contains(&bounty["id"].as_str().unwrap().to_owned()));
    }
    assert_ne!(lines[0]["id"], lines[1]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_on_a_terminal_prints_readable_lines() {
    let f = Function::on_shared("cli-human", &[("POLL_INTERVAL_MS", "200")]).await;
    // `script` runs the CLI on a pseudo-terminal, so it sees a terminal on stdout.
    let command_line = format!(
        "{} subscribe --category python --min-budget 500 --max-results 2",
        firehose_bin().display()
    );
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", &command_line, "/dev/null"])
        .env("FIREHOSE_URL", &f.base)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = script
        .spawn()
        .expect("`script` (util-linux) runs the CLI on a pty");
    let (output, matches) = feed_until_exit(&f, child).await;
    let screen = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    assert_eq!(output.status.code(), Some(0), "screen: {screen}");
    assert!(
        screen.contains("connected; waiting for new bounties"),
        "{screen}"
    );
    let bounty_lines: Vec<&str> = screen.lines().filter(|l| l.contains(" id ")).collect();
    assert_eq!(bounty_lines.len(), 2, "{screen}");
    for line in bounty_lines {
        assert!(
            line.contains("500.00 USD  python"),
            "money and category: {line}"
        );
        assert!(
            line.contains("#pytest") && line.contains("due 2099-01-01"),
            "{line}"
        );
        assert!(
            matches.iter().any(|id| line.ends_with(id.as_str())),
            "{line}"
        );
        assert!(!line.trim_start().starts_with('{'), "not JSON: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_timeout_without_a_match_exits_3() {
    let f = Function::on_shared("cli-timeout", &[("POLL_INTERVAL_MS", "200")]).await;
    let child = firehose(&f)
        .args([
            "subscribe",
            "--category",
            "nothing-here",
            "--max-results",
            "1",
            "--timeout",
            "3s",
        ])
        .spawn()
        .expect("spawn firehose");
    // Bounties keep coming, none of them match.
    let mut output = Box::pin(child.wait_with_output());
    let output = loop {
        tokio::select! {
            done = &mut output => break done.expect("firehose ran"),
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                f.publish(&bounty_body("other", "python", 50_000, &[])).await;
            }
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "stderr: {stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains("timed out after 3s with 0 of 1 bounties"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_with_a_clear_message() {
    let f = Function::on_shared("cli-usage", &[]).await;
    // Caught by the CLI itself: three decimals is not money.
    let output = firehose(&f)
        .args(["subscribe", "--min-budget", "5.001"])
        .output()
        .await
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("more than two decimals"));
    // Caught by the server: its message reaches the user, and no retry loop follows.
    let output = firehose(&f)
        .args(["subscribe", "--category", "Bad_Slug"])
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is not a slug") && stderr.contains("400 invalid_parameter"),
        "{stderr}"
    );
    // No server configured.
    let output = firehose(&f)
        .env_remove("FIREHOSE_URL")
        .args(["backfill"])
        .output()
        .await
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("FIREHOSE_URL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_converts_money_exactly_and_needs_the_key() {
    let f = Function::on_shared("cli-publish", &[]).await;
    let args = [
        "publish",
        "--title",
        "Port the importer",
        "--category",
        "rust",
        "--budget",
        "1,200.29",
        "--tag",
        "tokio,async",
        "--deadline",
        "2099-01-01T00:00:00Z",
        "--json",
    ];
    let output = firehose(&f).args(args).output().await.expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("FIREHOSE_API_KEY"));

    let output = firehose(&f)
        .env("FIREHOSE_API_KEY", TEST_KEY)
        .args(args)
        .output()
        .await
        .expect("run");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bounty: Value = serde_json::from_slice(&output.stdout).expect("the bounty as JSON");
    assert_eq!(bounty["budget_cents"], 120_029);
    assert_eq!(bounty["tags"], serde_json::json!(["tokio", "async"]));
    assert_eq!(bounty["status"], "open");

    let output = firehose(&f)
        .env("FIREHOSE_API_KEY", "wrong-key")
        .args(args)
        .output()
        .await
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("401"));

    // The same idempotency key twice: one bounty.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let output = firehose(&f)
            .env("FIREHOSE_API_KEY", TEST_KEY)
            .args(args)
            .args(["--idempotency-key", "cli-test-1"])
            .output()
            .await
            .expect("run");
        assert_eq!(output.status.code(), Some(0));
        let bounty: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        ids.push(bounty["id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[0], bounty["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_lists_open_matches_newest_first_up_to_the_limit() {
    let f = Function::on_shared("cli-backfill", &[]).await;
    let mut matches = Vec::new();
    for i in 0..4 {
        matches.push(
            f.publish(&bounty_body(&format!("m{i}"), "python", 50_000, &[]))
                .await,
        );
        f.publish(&bounty_body(&format!("cheap {i}"), "python", 49_999, &[]))
            .await;
    }
    let output = firehose(&f)
        .args([
            "backfill",
            "--category",
            "python",
            "--min-budget",
            "500",
            "--limit",
            "3",
        ])
        .output()
        .await
        .expect("run");
    assert_eq!(output.status.code(), Some(0));
    let ids: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let newest_first: Vec<String> = matches.iter().rev().take(3).cloned().collect();
    assert_eq!(ids, newest_first);
}

/// PATCHes bounty `id` with the test key; insists on 200 and returns the bounty.
async fn patch(f: &Function, id: &str, body: Value) -> Value {
    let response = common::http()
        .patch(f.url(&format!("/api/v1/tasks/{id}")))
        .bearer_auth(TEST_KEY)
        .json(&body)
        .send()
        .await
        .expect("PATCH");
    let status = response.status().as_u16();
    let bounty: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "PATCH answered {status}: {bounty}");
    bounty
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_each_change_as_a_json_line_and_exits_0_at_the_close() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let f = Function::on_shared("cli-watch", &[("POLL_INTERVAL_MS", "200")]).await;
    let id = f
        .publish(&bounty_body("watched", "python", 50_000, &[]))
        .await;
    let mut child = firehose(&f)
        .args(["watch", &id])
        .spawn()
        .expect("spawn firehose");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // Changes made before the watch has connected are its starting state, not
    // changes: raise the budget until the first change is printed.
    let mut cents = 50_000;
    let first = loop {
        cents += 100;
        assert!(
            cents < 50_000 + 100 * 100,
            "the watch never printed a change"
        );
        patch(&f, &id, serde_json::json!({"budget_cents": cents})).await;
        if let Ok(line) = tokio::time::timeout(Duration::from_millis(500), lines.next_line()).await
        {
            break line.expect("read").expect("a line before the end");
        }
    };
    patch(&f, &id, serde_json::json!({"title": "watched, renamed"})).await;
    let closed = patch(
        &f,
        &id,
        serde_json::json!({"status": "closed", "close_reason": "awarded"}),
    )
    .await;
    let mut printed = vec![first];
    while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the watch ends after the close")
        .expect("read")
    {
        printed.push(line);
    }
    let status = child.wait().await.expect("firehose ran");
    assert_eq!(status.code(), Some(0), "{printed:?}");
    let changes: Vec<Value> = printed
        .iter()
        .map(|line| serde_json::from_str(line).expect("each line is a JSON bounty"))
        .collect();
    // Each change once, in order, from the first one seen to the close.
    let versions: Vec<u64> = changes
        .iter()
        .map(|b| b["version"].as_u64().expect("version"))
        .collect();
    let first_version = versions[0];
    let expected: Vec<u64> = (first_version..=closed["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, expected, "{printed:?}");
    let last = changes.last().unwrap();
    assert_eq!(last["status"], "closed");
    assert_eq!(last["close_reason"], "awarded");
    assert_eq!(changes[changes.len() - 2]["title"], "watched, renamed");

    // Closed already: a new watch exits 0 at once, printing nothing.
    let output = firehose(&f)
        .args(["watch", &id, "--timeout", "30s"])
        .output()
        .await
        .expect("run");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_exits_4_for_an_unknown_bounty_and_3_at_its_timeout() {
    let f = Function::on_shared("cli-watch-exit", &[]).await;
    let output = firehose(&f)
        .args(["watch", "01ARZ3NDEKTSV4RRFFQ69G5FAV"])
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("no such bounty") && stderr.contains("404"),
        "{stderr}"
    );

    let id = f
        .publish(&bounty_body("quiet", "python", 50_000, &[]))
        .await;
    let output = firehose(&f)
        .args(["watch", &id, "--timeout", "2s"])
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("timed out after 2s"), "{stderr}");
    assert!(output.stdout.is_empty());

    // A usage error is still 2.
    let output = firehose(&f)
        .args(["watch", &id, "--max-changes", "0"])
        .output()
        .await
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_close_change_the_bounty_with_the_key_and_their_exit_codes() {
    let f = Function::on_shared("cli-update", &[]).await;
    let id = f
        .publish(&bounty_body("to change", "python", 50_000, &["pytest"]))
        .await;
    let run = |args: Vec<String>, key: Option<&str>| {
        let mut command = firehose(&f);
        if let Some(key) = key {
            command.env("FIREHOSE_API_KEY", key);
        }
        command.args(args);
        async move { command.output().await.expect("run") }
    };
    let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

    let output = run(
        args(&[
            "update",
            &id,
            "--budget",
            "750.5",
            "--tag",
            "rust,tokio",
            "--json",
        ]),
        Some(TEST_KEY),
    )
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bounty: Value = serde_json::from_slice(&output.stdout).expect("the bounty as JSON");
    assert_eq!(bounty["budget_cents"], 75_050);
    assert_eq!(bounty["tags"], serde_json::json!(["rust", "tokio"]));
    assert_eq!(bounty["version"], 2);
    assert_eq!(bounty["title"], "to change", "untouched fields stay");

    // No key: usage (2); a wrong key: refused (1); nothing to change: usage (2).
    let output = run(args(&["update", &id, "--title", "x"]), None).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("FIREHOSE_API_KEY"));
    let output = run(args(&["update", &id, "--title", "x"]), Some("wrong-key")).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("401"));
    let output = run(args(&["update", &id]), Some(TEST_KEY)).await;
    assert_eq!(output.status.code(), Some(2));
    // An unknown id: 4.
    let output = run(
        args(&["close", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--reason", "awarded"]),
        Some(TEST_KEY),
    )
    .await;
    assert_eq!(output.status.code(), Some(4));

    let output = run(
        args(&["close", &id, "--reason", "cancelled", "--json"]),
        Some(TEST_KEY),
    )
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bounty: Value = serde_json::from_slice(&output.stdout).expect("the bounty as JSON");
    assert_eq!(bounty["status"], "closed");
    assert_eq!(bounty["close_reason"], "cancelled");
    assert_eq!(bounty["version"], 3);

    // Closed: it can no longer change (5).
    for again in [
        args(&["close", &id, "--reason", "awarded"]),
        args(&["update", &id, "--budget", "900"]),
    ] {
        let output = run(again, Some(TEST_KEY)).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(5), "{stderr}");
        assert!(stderr.contains("bounty_closed"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_include_changes_prints_a_bounty_then_its_update_and_close() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let f = Function::on_shared("cli-changes", &[("POLL_INTERVAL_MS", "200")]).await;
    let mut child = firehose(&f)
        .args(["subscribe", "--category", "python", "--include-changes"])
        .spawn()
        .expect("spawn firehose");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // Published before the subscription connected: not new to it. Publish until one
    // is printed, then change that one.
    let mut n = 0;
    let first: Value = loop {
        n += 1;
        assert!(n < 60, "the subscription never printed a bounty");
        f.publish(&bounty_body(&format!("b{n}"), "python", 50_000, &[]))
            .await;
        if let Ok(line) = tokio::time::timeout(Duration::from_millis(1000), lines.next_line()).await
        {
            let line = line.expect("read").expect("a line before the end");
            break serde_json::from_str(&line).expect("a JSON bounty");
        }
    };
    let id = first["id"].as_str().expect("id").to_owned();
    patch(&f, &id, serde_json::json!({"budget_cents": 70_000})).await;
    patch(
        &f,
        &id,
        serde_json::json!({"status": "closed", "close_reason": "cancelled"}),
    )
    .await;
    let mut of_it = vec![first];
    while of_it.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the changes are printed")
            .expect("read")
            .expect("the subscription goes on");
        let bounty: Value = serde_json::from_str(&line).expect("a JSON bounty");
        // Other bounties published while the first one was on its way are new ones.
        if bounty["id"] == id.as_str() {
            of_it.push(bounty);
        } else {
            assert_eq!(bounty["version"], 1, "{line}");
        }
    }
    let seen: Vec<(u64, &str, u64)> = of_it
        .iter()
        .map(|b| {
            (
                b["version"].as_u64().unwrap(),
                b["status"].as_str().unwrap(),
                b["budget_cents"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "open", 50_000),
            (2, "open", 70_000),
            (3, "closed", 70_000)
        ]
    );
    assert_eq!(of_it[2]["close_reason"], "cancelled");
    child.kill().await.expect("stop the subscription");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_close_and_watch_on_a_terminal_print_readable_lines() {
    let f = Function::on_shared("cli-lifecycle-human", &[]).await;
    let id = f
        .publish(&bounty_body(
            "Fix flaky test",
            "python",
            50_000,
            &["pytest"],
        ))
        .await;
    // `script` runs the CLI on a pseudo-terminal, so it sees a terminal on stdout.
    let on_terminal = |args: String| {
        let mut script = Command::new("script");
        script
            .args([
                "-q",
                "-e",
                "-c",
                &format!("{} {args}", firehose_bin().display()),
                "/dev/null",
            ])
            .env("FIREHOSE_URL", &f.base)
            .env("FIREHOSE_API_KEY", TEST_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        async move {
            let output = script
                .output()
                .await
                .expect("`script` (util-linux) runs the CLI on a pty");
            let screen = String::from_utf8_lossy(&output.stdout).replace('\r', "");
            (output.status.code(), screen)
        }
    };
    let (code, screen) = on_terminal(format!("update {id} --budget 600")).await;
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("updated, now v2:") && screen.contains("600.00 USD  python"),
        "{screen}"
    );
    assert!(screen.trim_end().ends_with(&id), "{screen}");
    let (code, screen) = on_terminal(format!("close {id} --reason awarded")).await;
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("closed (awarded), now v3:"), "{screen}");
    let (code, screen) = on_terminal(format!("watch {id}")).await;
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("already closed or expired: nothing more will change"),
        "{screen}"
    );
}
