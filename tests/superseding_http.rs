//! Superseding over real HTTP, as it must hold on AWS: clients reach the function
//! through firehose-testkit's AWS-like front, which (like a Function URL) keeps reading
//! a response after its client has gone, so a departed client's stream runs on until
//! something ends it. A loopback proxy between the function and DynamoDB Local counts
//! the function's requests by operation. Bounties are published straight into DynamoDB
//! Local, so the proxy sees only what the streams do.
//!
//! Every stream request carries a header of the test's own (`x-test-stream`), ignored
//! by the function, by which the front's records are found again.

mod common;

use std::time::{Duration, Instant};

use common::sse::json;
use common::{draft, expect_error, http, DynamoLocal, Function, Proxy};
use eventsource_stream::{Event, Eventsource};
use firehose::publish::append;
use firehose::store::dynamo::DynamoFeedStore;
use firehose_testkit::front::{Exchange, Front};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

const SECOND: Duration = Duration::from_secs(1);
const STREAM: &str = "/api/v1/bounties/stream";
const MARK: &str = "x-test-stream";
/// The heartbeat of every function here: a superseded stream must end within it.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// One or more functions on one table, their store requests counted by a proxy.
struct Rig {
    proxy: Proxy,
    table: String,
    /// The table, straight (unproxied): for publishing.
    direct: DynamoFeedStore,
}

impl Rig {
    async fn new(label: &str) -> Rig {
        let endpoint = DynamoLocal::shared_endpoint().await;
        let proxy = Proxy::start(&endpoint).await.expect("proxy");
        let table = common::dynamo::fresh_table(&endpoint, label).await;
        let direct = DynamoFeedStore::new(
            common::dynamo::client(&endpoint).await,
            &table,
            1,
            Duration::from_secs(86_400),
        );
        Rig {
            proxy,
            table,
            direct,
        }
    }

    /// A function on the rig's table, its store requests through the proxy.
    async fn function(&self, env: &[(&str, &str)]) -> Function {
        Function::start_on_table(&self.proxy.base, &self.table, env).await
    }

    async fn publish(&self, title: &str) -> String {
        let published = append(&self.direct, 0, &[draft(title, "python")])
            .await
            .expect("a direct publish succeeds");
        published[0].id.clone()
    }

    /// How many `operation` requests the store got since `since`.
    fn requests_since(&self, operation: &str, since: Instant) -> usize {
        self.proxy
            .seen()
            .iter()
            .filter(|seen| seen.at >= since && seen.operation == operation)
            .count()
    }
}

/// One SSE connection, read with a real parser.
struct Sse {
    events: BoxStream<'static, Event>,
}

/// Opens a stream at `url` marked `mark`, resuming from `last_id` if given.
async fn open(url: &str, mark: &str, last_id: Option<&str>) -> reqwest::Response {
    let mut request = http().get(url).header(MARK, mark);
    if let Some(id) = last_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("stream request")
}

impl Sse {
    /// The stream of `response`, insisting on a 200 stream.
    async fn of(response: reqwest::Response, what: &str) -> Sse {
        let status = response.status();
        if status != 200 {
            let body = response.text().await.unwrap_or_default();
            panic!("{what}: answered {status}: {body}");
        }
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Sse {
            events: response
                .bytes_stream()
                .eventsource()
                .take_while(|event| std::future::ready(event.is_ok()))
                .filter_map(|event| std::future::ready(event.ok()))
                .boxed(),
        }
    }

    /// The next event; `None` when the server ended the stream.
    async fn next(&mut self, within: Duration) -> Option<Event> {
        tokio::time::timeout(within, self.events.next())
            .await
            .unwrap_or_else(|_| panic!("no event within {within:?}"))
    }

    /// The next event named `name`, skipping others.
    async fn next_named(&mut self, name: &str, within: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(event) if event.event == name => return event,
                Some(_) => {}
                None => panic!("the stream ended before a {name} event"),
            }
        }
    }
}

/// The front's record of stream `mark` once its response ended (within `limit`).
async fn ended(front: &Front, mark: &str, limit: Duration) -> (Exchange, Instant) {
    let exchange = front
        .wait_ended(MARK, mark, limit)
        .await
        .unwrap_or_else(|| panic!("the front never saw stream {mark}"));
    let at = exchange
        .ended
        .unwrap_or_else(|| panic!("stream {mark} still runs after {limit:?}"));
    (exchange, at)
}

/// Through the front, a client reconnects with its last id (from `connected` or from a
/// bounty) 30 times in 60 s, each time leaving its stream behind as a departed client
/// does, with a cap of 3: never refused; each superseded stream's response ends within
/// one heartbeat of the reconnect that took over from it, with a `superseded`
/// checkpoint written to nobody; and once they ended the store sees one stream's reads,
/// not thirty. `SHARED_READ=off`: each stream reads the log alone, so the reads count
/// streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reconnecting_with_its_last_id_is_never_refused_and_its_old_streams_end() {
    let rig = Rig::new("supersede").await;
    let poll = Duration::from_millis(250);
    let function = rig
        .function(&[
            ("MAX_STREAMS_PER_CLIENT", "3"),
            ("HEARTBEAT_SECONDS", "2"),
            ("POLL_INTERVAL_MS", "250"),
            ("SHARED_READ", "off"),
        ])
        .await;
    let front = Front::start(&function.base).await.expect("front");
    let url = front.url(STREAM);

    let began = Instant::now();
    let mut last_id: Option<String> = None;
    // (the stream superseded, when the request that superseded it was sent)
    let mut takeovers: Vec<(String, Instant)> = Vec::new();
    for n in 0..30u32 {
        let mark = n.to_string();
        let sent = Instant::now();
        let response = open(&url, &mark, last_id.as_deref()).await;
        let mut sse = Sse::of(response, &format!("reconnect {n}")).await;
        let connected = sse.next_named("connected", 30 * SECOND).await;
        assert_eq!(json(&connected)["resumed"], last_id.is_some());
        last_id = Some(connected.id.clone());
        if n % 3 == 1 {
            // Resume from a bounty's id too.
            let id = rig.publish(&format!("bounty {n}")).await;
            let bounty = sse.next_named("bounty", 10 * SECOND).await;
            assert_eq!(json(&bounty)["id"], id.as_str());
            last_id = Some(bounty.id.clone());
        }
        if n > 0 {
            takeovers.push(((n - 1).to_string(), sent));
        }
        // Two seconds a connection, then the client goes away without a word; the
        // front keeps the stream's response open, as a Function URL does.
        let pace = began + 2 * SECOND * (n + 1);
        tokio::time::sleep(pace.saturating_duration_since(Instant::now())).await;
        drop(sse);
    }

    for (mark, sent) in &takeovers {
        let (exchange, at) = ended(&front, mark, 2 * HEARTBEAT).await;
        assert!(
            at > *sent,
            "stream {mark} ended before it was superseded (its client left; the front must not tell)"
        );
        let after = at - *sent;
        assert!(
            after <= HEARTBEAT,
            "stream {mark} ended {after:?} after the reconnect that superseded it"
        );
        let tail = exchange.tail_text();
        assert!(
            tail.trim_end().ends_with(r#""reason":"superseded"}"#),
            "stream {mark}'s last frame: {tail}"
        );
    }
    let last = front.find(MARK, "29").expect("the last stream");
    assert_eq!(last.ended, None, "the last stream runs on");

    // One stream reads now: one Query per poll (one shard), one lease check per half
    // heartbeat. Thirty left running would make thirty times that.
    let (_, last_end) = ended(&front, "28", HEARTBEAT).await;
    let window_start = last_end.max(Instant::now());
    let window = 4 * SECOND;
    tokio::time::sleep(window).await;
    let queries = rig.requests_since("Query", window_start);
    // The lease checks: one BatchGetItem per half heartbeat per process with a stream
    // open (`stream_cap::OpenStreams`).
    let checks = rig.requests_since("BatchGetItem", window_start);
    let polls = (window.as_millis() / poll.as_millis()) as usize;
    println!("in {window:?} after the last takeover: {queries} Query, {checks} BatchGetItem");
    assert!(queries <= polls + 2, "{queries} Query in {window:?}");
    assert!(checks <= 5, "{checks} BatchGetItem in {window:?}");

    let logs = function.logs();
    let takeovers_logged = logs.matches("stream lease taken over").count();
    let elsewhere = logs.matches("superseded by another instance").count();
    println!("{takeovers_logged} takeovers; {elsewhere} learned from a lease check");
    assert_eq!(takeovers_logged, 29);
}

/// Across instances (classic Lambda: one stream per execution environment): a stream
/// on one function is superseded by a reconnect to another function on the same table,
/// learns it from its lease, and ends within a heartbeat; from then on it reads
/// nothing. The reconnected client leaves too (straight to the emulator, which passes
/// the disconnect on): once its stream has released its slot, the store sees no
/// request at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_superseded_from_another_instance_reads_nothing_after_it_ends() {
    let rig = Rig::new("supersedex").await;
    let env = [
        ("MAX_STREAMS_PER_CLIENT", "1"),
        ("HEARTBEAT_SECONDS", "2"),
        ("POLL_INTERVAL_MS", "100"),
        ("SHARED_READ", "off"),
    ];
    let first = rig.function(&env).await;
    let second = rig.function(&env).await;
    let front = Front::start(&first.base).await.expect("front");

    let mut old = Sse::of(open(&front.url(STREAM), "old", None).await, "old").await;
    let connected = old.next_named("connected", 30 * SECOND).await;
    drop(old);
    // Its client is gone, but through the front the stream runs on and polls.
    let left = Instant::now();
    tokio::time::sleep(SECOND).await;
    let polls = rig.requests_since("Query", left);
    assert!(polls >= 5, "{polls} polls in 1 s after the client left");

    let sent = Instant::now();
    let response = open(&second.url(STREAM), "new", Some(&connected.id)).await;
    // The cap is 1: admitted only by taking the old stream's slot.
    let mut new = Sse::of(response, "the reconnect").await;
    new.next_named("connected", 30 * SECOND).await;
    let (exchange, at) = ended(&front, "old", 2 * HEARTBEAT).await;
    assert!(
        at - sent <= HEARTBEAT,
        "ended {:?} after the takeover",
        at - sent
    );
    assert!(
        exchange.tail_text().contains(r#""reason":"superseded""#),
        "{}",
        exchange.tail_text()
    );
    assert!(
        first.logs().contains("superseded by another instance"),
        "the old stream learned it from its lease"
    );

    // The new stream's client leaves; the emulator tells its function at the next
    // heartbeat, which releases the slot (the old stream released nothing: the slot
    // was not its own any more).
    let gone = Instant::now();
    drop(new);
    common::eventually("the new stream's release", 30 * SECOND, || async {
        (rig.requests_since("DeleteItem", gone) > 0).then_some(())
    })
    .await;
    assert_eq!(rig.requests_since("DeleteItem", sent), 1);
    let settled = rig.proxy.count();
    tokio::time::sleep(3 * SECOND).await;
    let late: Vec<String> = rig.proxy.seen()[settled..]
        .iter()
        .map(|seen| seen.operation.clone())
        .collect();
    assert!(
        late.is_empty(),
        "requests after both streams ended: {late:?}"
    );
}

/// A superseded stream whose client is still reading gets a `checkpoint` with reason
/// `superseded` and ends; the new stream holds the one slot and goes on. The
/// checkpoint's cursor names no stream, so reconnecting with it does not bounce the
/// slot back (here it is refused: the cap is 1 and the slot is the new stream's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_stream_with_a_client_that_stays_gets_a_superseded_checkpoint() {
    let rig = Rig::new("supersedestay").await;
    let function = rig
        .function(&[
            ("MAX_STREAMS_PER_CLIENT", "1"),
            ("HEARTBEAT_SECONDS", "2"),
            ("POLL_INTERVAL_MS", "200"),
        ])
        .await;
    let url = function.url(STREAM);

    let mut stays = Sse::of(open(&url, "stays", None).await, "first").await;
    stays.next_named("connected", 30 * SECOND).await;
    let first = rig.publish("first").await;
    let bounty = stays.next_named("bounty", 10 * SECOND).await;
    assert_eq!(json(&bounty)["id"], first.as_str());

    let sent = Instant::now();
    let mut new = Sse::of(open(&url, "new", Some(&bounty.id)).await, "the reconnect").await;
    let connected = new.next_named("connected", 30 * SECOND).await;
    assert_eq!(json(&connected)["resumed"], true);

    let checkpoint = stays.next_named("checkpoint", 2 * HEARTBEAT).await;
    assert!(sent.elapsed() <= 2 * HEARTBEAT);
    let data = json(&checkpoint);
    assert_eq!(data["reason"], "superseded");
    assert_eq!(data["cursor"].as_str(), Some(checkpoint.id.as_str()));
    assert!(
        stays.next(2 * HEARTBEAT).await.is_none(),
        "the checkpoint is the last frame"
    );
    common::eventually("the access line", 10 * SECOND, || async {
        function
            .logs()
            .lines()
            .any(|line| line.contains("firehose::access") && line.contains("superseded"))
            .then_some(())
    })
    .await;

    // The new stream goes on from where the client was: the next bounty, once.
    let second = rig.publish("second").await;
    let next = new.next_named("bounty", 10 * SECOND).await;
    assert_eq!(json(&next)["id"], second.as_str());

    // The superseded client comes back with its checkpoint: an ordinary new stream,
    // over the cap of 1, refused; the new stream keeps its slot and its bounties.
    let again = open(&url, "again", Some(&checkpoint.id)).await;
    expect_error(again, 429, "too_many_streams", None).await;
    let third = rig.publish("third").await;
    let next = new.next_named("bounty", 10 * SECOND).await;
    assert_eq!(json(&next)["id"], third.as_str());
}
