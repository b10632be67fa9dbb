//! Store faults and departed clients, through a loopback proxy between the function
//! and DynamoDB Local (firehose-testkit's proxy): throttling errors, 500s and
//! dropped connections lead to `error` frames at a backed-off rate, then every bounty
//! published meanwhile exactly once; a departed subscriber costs no more requests.
//! Bounties are published straight into DynamoDB Local (not through the faulty proxy)
//! so that they are committed during the fault.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::sse::{bounty_id, json};
use common::{draft, DynamoLocal, Fault, Function, Proxy};
use firehose::publish::append;
use firehose::store::dynamo::DynamoFeedStore;

const SECOND: Duration = Duration::from_secs(1);
const STREAM: &str = "/api/v1/bounties/stream";

struct Rig {
    proxy: Proxy,
    function: Function,
    /// The table, straight (unproxied).
    direct: DynamoFeedStore,
}

async fn rig(label: &str, env: &[(&str, &str)]) -> Rig {
    let endpoint = DynamoLocal::shared_endpoint().await;
    let proxy = Proxy::start(&endpoint).await.expect("proxy");
    let table = common::dynamo::fresh_table(&endpoint, label).await;
    let function = Function::start_on_table(&proxy.base, &table, env).await;
    let direct = DynamoFeedStore::new(
        common::dynamo::client(&endpoint).await,
        &table,
        1,
        Duration::from_secs(86_400),
    );
    Rig {
        proxy,
        function,
        direct,
    }
}

async fn publish_direct(store: &DynamoFeedStore, title: &str) -> String {
    let published = append(store, 0, &[draft(title, "python")])
        .await
        .expect("a direct publish succeeds");
    published[0].id.clone()
}

/// Runs one fault window per entry of `faults` on one stream, publishing during each,
/// and checks the error frames' pacing and that every bounty arrives exactly once.
async fn fault_windows(label: &str, faults: &[Fault]) {
    let rig = rig(
        label,
        &[("POLL_INTERVAL_MS", "250"), ("STREAM_MAX_SECONDS", "600")],
    )
    .await;
    let (mut sub, _) = rig.function.subscribe(STREAM).await;
    let mut expected = Vec::new();
    let mut received = Vec::new();

    for fault in faults {
        rig.proxy.set_fault(*fault);
        let seen_before = rig.proxy.count();
        expected.push(publish_direct(&rig.direct, &format!("{fault:?} 1")).await);
        // The error frames' announced waits (retry_in_ms).
        let mut errors: Vec<u64> = Vec::new();
        while errors.len() < 4 {
            let event = sub.next(60 * SECOND).await.expect("the stream stays open");
            match event.event.as_str() {
                "error" => {
                    let data = json(&event);
                    assert_eq!(data["code"], "store_unavailable", "{data}");
                    let retry = data["retry_in_ms"].as_u64().expect("retry_in_ms");
                    errors.push(retry);
                }
                "bounty" => received.push(bounty_id(&event)),
                _ => {}
            }
        }
        expected.push(publish_direct(&rig.direct, &format!("{fault:?} 2")).await);
        rig.proxy.set_fault(Fault::None);
        // Recovery before the next window: what this one missed arrives.
        let want = expected.len() - received.len();
        received.extend(sub.collect_bounties(want, 90 * SECOND).await);

        // Back-off: each announced wait at least as long as the previous one (the step
        // doubles, jitter takes at most half of it), within the 30 s cap...
        let retries = errors;
        assert!(
            retries.windows(2).all(|w| w[1] >= w[0]) && retries.iter().all(|ms| *ms <= 30_000),
            "{fault:?}: retry_in_ms {retries:?}"
        );
        assert!(
            retries[3] >= 1_000,
            "{fault:?}: grew from 250 ms: {retries:?}"
        );
        // ...and honoured, as the store sees it: over the time between the first and
        // the last faulted request, no more polls than the shortest announced waits
        // (half of each step) allow, and the SDK's single retry doubles that at most.
        let window: Vec<Instant> = rig.proxy.seen()[seen_before..]
            .iter()
            .filter(|seen| seen.fault == *fault)
            .map(|seen| seen.at)
            .collect();
        let span = match (window.first(), window.last()) {
            (Some(first), Some(last)) => *last - *first,
            _ => panic!("{fault:?}: no faulted request"),
        };
        let bound = 2 * max_polls_within(span, 250, 30_000);
        println!(
            "{fault:?}: retry_in_ms {retries:?}; {} faulted requests over {span:?} (bound {bound})",
            window.len()
        );
        assert!(
            window.len() <= bound,
            "{fault:?}: {} faulted requests in {span:?}, more than the back-off allows ({bound})",
            window.len()
        );
    }

    // Everything published during the faults, once.
    let unique: HashSet<&String> = received.iter().collect();
    assert_eq!(unique.len(), received.len(), "duplicates: {received:?}");
    let mut sorted = received.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "every bounty published during the faults");
    // And nothing repeated afterwards.
    let last = publish_direct(&rig.direct, "after").await;
    assert_eq!(sub.collect_bounties(1, 30 * SECOND).await, [last]);
}

/// The most polls a stream can make in `span` while every poll fails: each wait is at
/// least half its step (jitter), the step doubles from `base_ms` up to `cap_ms`.
fn max_polls_within(span: Duration, base_ms: u64, cap_ms: u64) -> usize {
    let span_ms = span.as_millis() as u64;
    let (mut polls, mut elapsed, mut step) = (1, 0, base_ms);
    while elapsed + step / 2 <= span_ms {
        elapsed += step / 2;
        polls += 1;
        step = (step * 2).min(cap_ms);
    }
    polls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_errors_back_off_then_deliver_everything_once() {
    fault_windows(
        "throttle",
        &[Fault::ProvisionedThroughputExceeded, Fault::Throttling],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_dropped_connections_back_off_then_deliver_everything_once() {
    fault_windows("5xx", &[Fault::ServerError, Fault::DropConnection]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departed_subscriber_costs_no_store_request_after_its_next_heartbeat() {
    let rig = rig(
        "departed",
        &[("HEARTBEAT_SECONDS", "1"), ("POLL_INTERVAL_MS", "100")],
    )
    .await;
    let (sub, _) = rig.function.subscribe(STREAM).await;
    // Polling while the subscriber is there.
    let before = rig.proxy.count();
    tokio::time::sleep(2 * SECOND).await;
    let polls_while_connected = rig.proxy.count() - before;
    assert!(
        polls_while_connected >= 3,
        "{polls_while_connected} requests in 2 s while connected"
    );

    let left = Instant::now();
    drop(sub);
    // The function notices at its next write (a heartbeat within 1 s) and releases the
    // stream's lease (one DeleteItem).
    common::eventually("the lease release", 30 * SECOND, || async {
        rig.proxy
            .seen()
            .iter()
            .any(|seen| seen.at > left && seen.operation == "DeleteItem")
            .then_some(())
    })
    .await;
    let seen = rig.proxy.seen();
    let last_poll = seen
        .iter()
        .filter(|s| s.at > left && s.operation == "Query")
        .map(|s| s.at - left)
        .max();
    println!(
        "after the disconnect: {} requests, last poll at {last_poll:?}",
        seen.iter().filter(|s| s.at > left).count()
    );

    // From then on: silence, over many poll intervals and heartbeats.
    let settled = rig.proxy.count();
    tokio::time::sleep(3 * SECOND).await;
    let late: Vec<String> = rig.proxy.seen()[settled..]
        .iter()
        .map(|s| s.operation.clone())
        .collect();
    assert!(late.is_empty(), "requests after the stream ended: {late:?}");
    assert!(
        rig.function
            .logs()
            .lines()
            .any(|line| line.contains("firehose::access") && line.contains("client_gone")),
        "the stream ended because its client left"
    );
}

/// The titles of every bounty in the log (read straight from DynamoDB Local).
async fn titles_in_log(store: &DynamoFeedStore) -> Vec<String> {
    use firehose::cursor::Position;
    use firehose::store::FeedReader;
    let page = store
        .read_after(0, Position::START, 100)
        .await
        .expect("a direct read");
    page.entries
        .into_iter()
        .map(|entry| entry.bounty.expect("a readable entry").title)
        .collect()
}

/// A publish whose transaction committed but whose answer was lost is never appended a
/// second time, and is answered 201 with the one bounty: the first answer is held past
/// the SDK's attempt timeout (3 s), the SDK's retry is answered
/// `TransactionInProgressException` (as DynamoDB answers a resend of a transaction
/// still running), then the function sends the same transaction again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_answered_late_then_in_progress_creates_one_bounty_and_says_so() {
    let rig = rig("publish-in-progress", &[]).await;
    rig.proxy.script(
        "TransactWriteItems",
        [
            Fault::Delay(Duration::from_secs(4)),
            Fault::TransactionInProgress,
        ],
    );
    let (status, bounty) = rig
        .function
        .try_publish(&common::bounty_body("once", "python", 100, &[]))
        .await;
    assert_eq!(status, 201, "{bounty}");
    assert_eq!(titles_in_log(&rig.direct).await, ["once"]);
    let sends = rig.proxy.counts()["TransactWriteItems"];
    assert!(sends >= 3, "held, in progress, then sent again: {sends}");
}

/// Every answer to the append lost (each held past the attempt timeout): the function
/// looks before it answers, finds its entry, and says 201; one bounty exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_every_answer_is_lost_creates_one_bounty_and_says_so() {
    let rig = rig("publish-all-held", &[]).await;
    rig.proxy.script(
        "TransactWriteItems",
        [Fault::Delay(Duration::from_secs(4)); 12],
    );
    let (status, bounty) = rig
        .function
        .try_publish(&common::bounty_body("held", "python", 100, &[]))
        .await;
    assert_eq!(status, 201, "{bounty}");
    assert_eq!(titles_in_log(&rig.direct).await, ["held"]);
    assert!(
        rig.proxy.counts()["GetItem"] >= 1,
        "looked for the entry before answering"
    );
}

/// Every send of the append lost before it reached the store: nothing was written,
/// and the answer says so (503); the next publish goes through as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_that_never_reaches_the_store_answers_503_and_writes_nothing() {
    let rig = rig("publish-dropped", &[]).await;
    rig.proxy
        .script("TransactWriteItems", [Fault::DropConnection; 12]);
    let (status, body) = rig
        .function
        .try_publish(&common::bounty_body("lost", "python", 100, &[]))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable");
    assert!(titles_in_log(&rig.direct).await.is_empty());
    rig.proxy.script("TransactWriteItems", []);
    let (status, body) = rig
        .function
        .try_publish(&common::bounty_body("next", "python", 100, &[]))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(titles_in_log(&rig.direct).await, ["next"]);
}
