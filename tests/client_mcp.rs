//! `firehose mcp` driven by a real MCP client (the Python `mcp` package, installed by
//! scripts/test into .local/venv): list the tools, call subscribe_bounties with
//! max_results 1, publish a match while it waits, get that bounty back; then list_bounties;
//! then subscribe_bounties for what nobody publishes, which ends at its timeout; with
//! include_changes, a change to a matching bounty; then watch_bounty: the change made while it waits, its
//! timeout, after_version, and an unknown id.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::cli::{firehose_bin, python_with_mcp};
use common::{bounty_body, Function};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// The MCP client's next line of JSON.
async fn next(lines: &mut Lines) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .expect("the MCP client said nothing for 120 s")
        .expect("read")
        .expect("the MCP client exited early");
    serde_json::from_str::<Value>(&line).unwrap_or_else(|err| panic!("{err}: {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_bounties_returns_a_match_published_while_it_waits() {
    let f = Function::on_shared("mcp", &[("POLL_INTERVAL_MS", "200")]).await;
    // Watched at the end; another category, so the python listings do not show it.
    let watched = f
        .publish(&bounty_body("watched", "rust", 50_000, &[]))
        .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/mcp_client.py");
    let mut child = Command::new(python_with_mcp())
        .arg(script)
        .arg(firehose_bin())
        .arg(&f.base)
        .arg(&watched)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python with the mcp package (scripts/test installs it into .local/venv)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();

    let tools = next(&mut lines).await;
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"subscribe_bounties")
            && names.contains(&"list_bounties")
            && names.contains(&"watch_bounty"),
        "{names:?}"
    );
    let schema = &tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "subscribe_bounties")
        .unwrap()["schema"]["properties"];
    for param in [
        "category",
        "min_budget_cents",
        "tag",
        "deadline_after",
        "max_results",
        "timeout_ms",
        "include_changes",
    ] {
        assert!(
            schema.get(param).is_some(),
            "subscribe_bounties takes {param}: {schema}"
        );
    }

    // A progress notification says when the subscription is connected: from then on,
    // a publish is a new bounty for it.
    loop {
        let progress = next(&mut lines).await;
        assert_eq!(progress["progress"], 0.0, "{progress}");
        assert_eq!(progress["total"], 1.0, "{progress}");
        if progress["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("subscribed")
        {
            break;
        }
    }
    f.publish(&bounty_body("not enough", "python", 49_999, &[]))
        .await;
    f.publish(&bounty_body("wrong category", "go", 90_000, &[]))
        .await;
    let wanted = f
        .publish(&bounty_body("the match", "python", 75_000, &["pytest"]))
        .await;

    let result = loop {
        let line = next(&mut lines).await;
        if line.get("result").is_some() {
            break line;
        }
        assert!(line.get("progress").is_some(), "{line}");
    };
    assert_eq!(result["is_error"], false, "{result}");
    let bounties = result["result"]["bounties"].as_array().expect("bounties");
    assert_eq!(bounties.len(), 1, "{result}");
    assert_eq!(bounties[0]["id"], wanted.as_str());
    assert_eq!(bounties[0]["budget_cents"], 75_000);
    assert_eq!(result["result"]["timed_out"], false);

    // list_bounties (the backfill) has it too, with the cheaper python one.
    let listed = next(&mut lines).await;
    assert_eq!(listed["is_error"], false, "{listed}");
    let titles: Vec<&str> = listed["listed"]["bounties"]
        .as_array()
        .expect("bounties")
        .iter()
        .map(|b| b["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["the match", "not enough"]);
    assert!(listed["listed"]["stream_cursor"].is_string());
    // Nothing matches: the call ends at its timeout, empty-handed, without an error.
    let waited = next(&mut lines).await;
    assert_eq!(waited["is_error"], false, "{waited}");
    assert_eq!(waited["waited"]["timed_out"], true, "{waited}");
    assert_eq!(
        waited["waited"]["bounties"].as_array().map(Vec::len),
        Some(0),
        "{waited}"
    );
    // With include_changes, a change to a matching bounty is a result too.
    loop {
        let progress = next(&mut lines).await;
        assert!(progress.get("progress").is_some(), "{progress}");
        let message = progress["message"].as_str().unwrap_or_default();
        if message.starts_with("subscribed") {
            assert!(message.contains("or changes"), "{message}");
            break;
        }
    }
    let response = common::http()
        .patch(f.url(&format!("/api/v1/tasks/{wanted}")))
        .bearer_auth(common::TEST_KEY)
        .json(&serde_json::json!({"budget_cents": 80_000}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(response.status(), 200);
    let result = loop {
        let line = next(&mut lines).await;
        if line.get("changes_result").is_some() {
            break line;
        }
        assert!(line.get("progress").is_some(), "{line}");
    };
    assert_eq!(result["is_error"], false, "{result}");
    let changed = &result["changes_result"];
    assert_eq!(changed["bounties"], serde_json::json!([]), "{result}");
    assert_eq!(changed["changes"][0]["change"], "updated", "{result}");
    assert_eq!(changed["changes"][0]["bounty"]["id"], wanted.as_str());
    assert_eq!(changed["changes"][0]["bounty"]["version"], 2);
    assert_eq!(changed["changes"][0]["bounty"]["budget_cents"], 80_000);

    // watch_bounty: once it says it is watching, a change is the next change.
    loop {
        let progress = next(&mut lines).await;
        assert!(progress.get("progress").is_some(), "{progress}");
        if progress["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("watching")
        {
            break;
        }
    }
    let response = common::http()
        .patch(f.url(&format!("/api/v1/tasks/{watched}")))
        .bearer_auth(common::TEST_KEY)
        .json(&serde_json::json!({"budget_cents": 65_000}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(response.status(), 200);
    let result = loop {
        let line = next(&mut lines).await;
        if line.get("watched").is_some() {
            break line;
        }
        assert!(line.get("progress").is_some(), "{line}");
    };
    assert_eq!(result["is_error"], false, "{result}");
    let watched_result = &result["watched"];
    assert_eq!(watched_result["change"], "updated", "{result}");
    assert_eq!(watched_result["bounty"]["id"], watched.as_str());
    assert_eq!(watched_result["bounty"]["version"], 2);
    assert_eq!(watched_result["bounty"]["budget_cents"], 65_000);
    assert_eq!(watched_result["final"], false);
    assert_eq!(watched_result["timed_out"], false);
    // Nothing changes: the call ends at its timeout with the bounty as it is.
    let quiet = next(&mut lines).await;
    assert_eq!(quiet["is_error"], false, "{quiet}");
    assert_eq!(quiet["watch_timeout"]["timed_out"], true, "{quiet}");
    assert_eq!(quiet["watch_timeout"]["change"], Value::Null, "{quiet}");
    assert_eq!(quiet["watch_timeout"]["bounty"]["version"], 2, "{quiet}");
    // Past the version the caller knows: at once, as it is.
    let after = next(&mut lines).await;
    assert_eq!(after["is_error"], false, "{after}");
    assert_eq!(after["watch_after"]["change"], "updated", "{after}");
    assert_eq!(after["watch_after"]["bounty"]["version"], 2, "{after}");
    assert_eq!(after["watch_after"]["timed_out"], false, "{after}");
    // An unknown id: a tool error naming the 404.
    let unknown = next(&mut lines).await;
    assert_eq!(unknown["is_error"], true, "{unknown}");
    assert_eq!(
        unknown["watch_unknown"]["error"]["status"], 404,
        "{unknown}"
    );

    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the MCP client exits")
        .expect("wait");
    assert!(status.success());
}
