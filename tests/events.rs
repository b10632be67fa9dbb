//! The sample Function URL events in `events/`: each one, fed through the handler
//! in-process and through `cargo lambda invoke` against `cargo lambda watch`, in the
//! order of `events/README.md`'s table, gets the status it documents. The samples
//! about one existing bounty name a stand-in id ([`PUBLISHED`]), replaced by the id of
//! the bounty `publish.json` created, as the README tells a reader to do.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::dynamo::{client, fresh_table};
use common::{DynamoLocal, Function};
use firehose::auth::ApiKeys;
use firehose::config::Config;
use firehose::http::{body, handle, App};
use firehose::store::dynamo::DynamoFeedStore;

/// The key the sample publish event carries (and `scripts/dev` defaults to).
const EVENTS_KEY: &str = "dev-publish-key";

/// The stand-in id of the samples about the bounty `publish.json` creates.
const PUBLISHED: &str = "01JTM3Z5Q0000000000000000B";

/// Each sample, its documented status, and a piece of the body that shows it, in the
/// README's order: `publish.json` comes before the samples that need its bounty, and
/// the close comes last (a closed bounty neither changes nor streams).
const SAMPLES: [(&str, u16, &str); 10] = [
    ("stream-filter.json", 200, "event: connected"),
    (
        "stream-bad-param.json",
        400,
        "\"code\":\"invalid_parameter\"",
    ),
    ("publish.json", 201, "\"status\":\"open\""),
    ("publish-no-key.json", 401, "\"code\":\"unauthorized\""),
    ("tasks-list.json", 200, "\"stream_cursor\""),
    ("task-unknown.json", 404, "\"code\":\"not_found\""),
    ("board.json", 200, "<!doctype html>"),
    ("task-stream.json", 200, "event: connected"),
    ("task-update.json", 200, "\"version\":2"),
    ("task-close.json", 200, "\"close_reason\":\"awarded\""),
];

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("events")
}

fn read(file: &str) -> String {
    std::fs::read_to_string(events_dir().join(file))
        .unwrap_or_else(|err| panic!("events/{file}: {err}"))
}

/// Sample `file` about the bounty `published` (a file without the stand-in id as is).
fn about(file: &str, published: &str) -> String {
    read(file).replace(PUBLISHED, published)
}

#[test]
fn every_sample_event_is_covered() {
    let mut files: Vec<String> = std::fs::read_dir(events_dir())
        .expect("events/")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let mut covered: Vec<String> = SAMPLES
        .iter()
        .map(|(file, ..)| (*file).to_owned())
        .collect();
    covered.sort();
    assert_eq!(files, covered);
    let readme = std::fs::read_to_string(events_dir().join("README.md")).expect("events/README.md");
    for (file, status, _) in SAMPLES {
        let line = readme
            .lines()
            .find(|line| line.starts_with(&format!("| `{file}`")))
            .unwrap_or_else(|| panic!("README names {file}"));
        assert!(
            line.contains(&status.to_string()),
            "README gives {file} status {status}: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sample_event_through_the_handler_gets_its_status() {
    let ddb = DynamoLocal::shared_endpoint().await;
    let table = fresh_table(&ddb, "events").await;
    let hash = ApiKeys::hash_hex(EVENTS_KEY);
    let config = Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(table.clone()),
        "PUBLISH_API_KEY_SHA256" => Some(hash.clone()),
        "STREAM_MAX_SECONDS" => Some("1".to_owned()),
        _ => None,
    })
    .expect("config");
    let store = DynamoFeedStore::new(client(&ddb).await, &table, 1, Duration::from_secs(86_400));
    let app = App::new(config, store);
    let mut published: Option<String> = None;
    for (file, status, shows) in SAMPLES {
        let event = match &published {
            Some(id) => about(file, id),
            None => read(file),
        };
        let request =
            lambda_http::request::from_str(&event).unwrap_or_else(|err| panic!("{file}: {err}"));
        let response = handle(&app, request).await;
        assert_eq!(response.status().as_u16(), status, "{file}");
        let text = String::from_utf8_lossy(&body::collect(response.into_body()).await).into_owned();
        assert!(text.contains(shows), "{file}: {text}");
        if file == "publish.json" {
            let bounty: serde_json::Value = serde_json::from_str(&text).expect("a bounty");
            published = Some(bounty["id"].as_str().expect("its id").to_owned());
        }
    }
    assert!(published.is_some(), "publish.json ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sample_event_through_cargo_lambda_invoke_prints_its_body() {
    let ddb = DynamoLocal::shared_endpoint().await;
    let hash = ApiKeys::hash_hex(EVENTS_KEY);
    let f = Function::start(
        &ddb,
        "invoke",
        &[
            ("PUBLISH_API_KEY_SHA256", hash.as_str()),
            ("STREAM_MAX_SECONDS", "1"),
        ],
    )
    .await;
    let port = f.base.rsplit(':').next().expect("port").to_owned();
    let mut published: Option<String> = None;
    for (file, status, shows) in SAMPLES {
        // cargo lambda invoke cannot show publish.json's 201 body: the id comes from
        // the backfill, which lists the one bounty there is.
        let sample =
            std::env::temp_dir().join(format!("firehose-events-{}-{file}", std::process::id()));
        let event = match &published {
            Some(id) => about(file, id),
            None => read(file),
        };
        std::fs::write(&sample, event).unwrap_or_else(|err| panic!("{}: {err}", sample.display()));
        let output = tokio::process::Command::new(firehose_testkit::function::cargo_lambda())
            .args([
                "lambda",
                "invoke",
                "-A",
                "127.0.0.1",
                "-P",
                &port,
                "--data-file",
            ])
            .arg(&sample)
            .arg("firehose-lambda")
            .output()
            .await
            .expect("cargo lambda invoke");
        let _ = std::fs::remove_file(&sample);
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if status == 200 {
            assert!(printed.contains(shows), "{file}: {printed}");
        } else {
            // cargo lambda invoke reads any status but 200 of a streamed response as a
            // Lambda error payload and cannot show its body (events/README.md says so).
            assert!(
                printed.contains("invalid error payload") && !printed.contains("event: connected"),
                "{file}: {printed}"
            );
        }
        if file == "publish.json" {
            let page: serde_json::Value = common::http()
                .get(f.url("/api/v1/tasks"))
                .send()
                .await
                .expect("backfill")
                .json()
                .await
                .expect("a page");
            let id = page["bounties"][0]["id"]
                .as_str()
                .expect("the published bounty");
            published = Some(id.to_owned());
        }
    }
    // The one publish and the two changes went through, whatever invoke printed about
    // them: one log entry each (a change is an entry of the bounty's shard).
    use firehose::store::FeedHeads;
    let head = f.store(1).await.head(0).await.expect("head");
    assert_eq!(
        head.seq, 3,
        "publish.json appended one bounty, task-update.json and task-close.json one change each"
    );
    let id = published.expect("publish.json ran");
    let bounty: serde_json::Value = common::http()
        .get(f.url(&format!("/api/v1/tasks/{id}")))
        .send()
        .await
        .expect("lookup")
        .json()
        .await
        .expect("a bounty");
    assert_eq!(bounty["status"], "closed", "{bounty}");
    assert_eq!(bounty["version"], 3, "{bounty}");
}

/// A Function URL hands a body that is not UTF-8 to the function base64-encoded; it
/// is refused as JSON like any other broken body. (`cargo lambda watch` cannot carry
/// such a body: it answers 500 itself, before the function runs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_utf8_is_a_400_invalid_json() {
    use base64::Engine as _;
    let ddb = DynamoLocal::shared_endpoint().await;
    let table = fresh_table(&ddb, "binary").await;
    let hash = ApiKeys::hash_hex(EVENTS_KEY);
    let config = Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(table.clone()),
        "PUBLISH_API_KEY_SHA256" => Some(hash.clone()),
        _ => None,
    })
    .expect("config");
    let store = DynamoFeedStore::new(client(&ddb).await, &table, 1, Duration::from_secs(86_400));
    let app = App::new(config, store);
    let mut event: serde_json::Value =
        serde_json::from_str(&read("publish.json")).expect("publish.json");
    event["body"] = base64::engine::general_purpose::STANDARD
        .encode([0x03, b'[', b'k', 0x1e, 0xff])
        .into();
    event["isBase64Encoded"] = true.into();
    let request = lambda_http::request::from_str(&event.to_string()).expect("event");
    let response = handle(&app, request).await;
    assert_eq!(response.status().as_u16(), 400);
    let text = String::from_utf8_lossy(&body::collect(response.into_body()).await).into_owned();
    assert!(text.contains("\"code\":\"invalid_json\""), "{text}");
}
