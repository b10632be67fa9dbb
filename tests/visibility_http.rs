//! DynamoDB's visibility window, over real HTTP against DynamoDB Local: a Query is
//! read-committed towards transactions, so a reader can see an append's head item
//! before its entry item. No local engine shows that window by itself, so the test
//! makes it on purpose: it writes the head item ahead of its entry with the SDK, backfills
//! and resumes streams inside the window, then writes the entry. The backfill never
//! hands over past the entry, a resume inside the window is not refused, and every
//! subscriber receives the entry exactly once.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use common::{bounty_body, http, Function, Subscriber};
use firehose::cursor::{Cursor, Position};
use firehose::publish::entries_after;
use firehose::store::dynamo::schema::{PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE};
use firehose::store::{FeedHeads, NewEntry};
use serde_json::Value;

const SECOND: Duration = Duration::from_secs(1);
const STREAM: &str = "/api/v1/bounties/stream";

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// Moves shard 0's head from `from` to `entry`'s position, as the first half of an
/// append's transaction, leaving the entry item unwritten.
async fn write_head_ahead(f: &Function, from: Position, entry: &NewEntry) {
    common::dynamo::client(&f.dynamo_endpoint)
        .await
        .update_item()
        .table_name(&f.table)
        .key(PARTITION_KEY, s("head#0"))
        .key(SORT_KEY, s("head"))
        .update_expression("SET seq = :seq, last_ms = :last_ms")
        .condition_expression("seq = :expected")
        .expression_attribute_values(":seq", n(entry.position.seq))
        .expression_attribute_values(":last_ms", n(entry.position.created_ms))
        .expression_attribute_values(":expected", n(from.seq))
        .send()
        .await
        .expect("head written ahead of its entry");
}

/// Writes `entry`'s item into shard 0's log, as the function's append does: the end
/// of the window.
async fn write_entry(f: &Function, entry: &NewEntry) {
    let expires_at = u64::try_from(Utc::now().timestamp()).expect("after 1970") + 86_400;
    common::dynamo::client(&f.dynamo_endpoint)
        .await
        .put_item()
        .table_name(&f.table)
        .item(PARTITION_KEY, s("feed#0"))
        .item(SORT_KEY, s(entry.position.sort_key()))
        .item("seq", n(entry.position.seq))
        .item("id", s(entry.bounty.id.clone()))
        .item(
            "bounty",
            s(serde_json::to_string(&entry.bounty).expect("bounty JSON")),
        )
        .item(TTL_ATTRIBUTE, n(expires_at))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .expect("entry written");
}

/// The first page of the backfill, with no filter.
async fn backfill(f: &Function) -> Value {
    let response = http()
        .get(f.url("/api/v1/tasks"))
        .send()
        .await
        .expect("backfill request");
    assert_eq!(response.status(), 200);
    response.json().await.expect("backfill JSON")
}

fn listed_ids(page: &Value) -> Vec<String> {
    page["bounties"]
        .as_array()
        .expect("bounties")
        .iter()
        .map(|bounty| bounty["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_ahead_of_its_entry_is_never_handed_over_past_nor_refused_on_resume() {
    let f = Function::on_shared("visibility", &[("POLL_INTERVAL_MS", "200")]).await;
    let store = f.store(1).await;

    // A live subscriber takes the first two bounties; its last id is a cursor after
    // entry 2, as a client holds it when it reconnects.
    let (mut live, _) = f.subscribe(STREAM).await;
    let first = f.publish(&bounty_body("first", "python", 100, &[])).await;
    let second = f.publish(&bounty_body("second", "python", 100, &[])).await;
    assert_eq!(
        live.collect_bounties(2, 30 * SECOND).await,
        [first.clone(), second.clone()]
    );
    let live_cursor = live.last_event_id.clone().expect("an id");
    drop(live);

    // The window: the head says 3, entry 3 is not readable yet.
    let head = store.head(0).await.expect("head");
    assert_eq!(head.seq, 2);
    let draft = common::draft("third", "python");
    let third = entries_after(head, Utc::now(), 0, &[draft], None)
        .pop()
        .expect("one entry");
    write_head_ahead(&f, head, &third).await;
    assert_eq!(store.head(0).await.expect("head"), third.position);

    // The backfill lists what it can read, and hands over no later than that.
    let page = backfill(&f).await;
    assert_eq!(listed_ids(&page), [second.clone(), first.clone()]);
    let stream_cursor = page["stream_cursor"].as_str().expect("stream_cursor");
    let handed_over = Cursor::decode_unchecked(stream_cursor).expect("a cursor");
    assert!(
        handed_over.positions[0] < third.position,
        "handed over at {:?}, past entry 3 the backfill never saw",
        handed_over.positions[0]
    );

    // Resumes inside the window are not refused (`connect` insists on 200): from the
    // backfill's cursor, and from the live subscriber's last id.
    let mut from_backfill = Subscriber::resuming(f.url(STREAM), stream_cursor);
    from_backfill.connect().await;
    let mut resumed = Subscriber::resuming(f.url(STREAM), &live_cursor);
    resumed.connect().await;
    // Several polls inside the window: nothing is delivered, nothing is skipped.
    for subscriber in [&mut from_backfill, &mut resumed] {
        let inside = subscriber.read_connection(SECOND).await;
        assert!(!inside.closed);
        assert_eq!(inside.bounty_ids(), Vec::<String>::new());
        assert_eq!(inside.named("error").len(), 0, "{:?}", inside.events);
    }

    // The entry becomes readable: each stream delivers it, then the next bounty,
    // each once.
    write_entry(&f, &third).await;
    let sentinel = f
        .publish(&bounty_body("sentinel", "python", 100, &[]))
        .await;
    for subscriber in [&mut from_backfill, &mut resumed] {
        assert_eq!(
            subscriber.collect_bounties(2, 30 * SECOND).await,
            [third.bounty.id.clone(), sentinel.clone()]
        );
    }
    // And backfill plus stream is every bounty once.
    let page = backfill(&f).await;
    assert_eq!(
        listed_ids(&page),
        [sentinel, third.bounty.id.clone(), second, first]
    );
}
