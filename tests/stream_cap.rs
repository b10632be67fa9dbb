//! The per-client stream cap over real HTTP against DynamoDB Local: the stream past
//! the cap is refused with 429 before it starts, a closed stream frees its slot, and
//! the slots of a killed function lapse on their own.

mod common;

use std::time::{Duration, Instant};

use common::{expect_error, http, Function};

const SECOND: Duration = Duration::from_secs(1);
const STREAM: &str = "/api/v1/bounties/stream";

/// Asserts the contract's 429 and returns its Retry-After in seconds.
async fn expect_too_many(response: reqwest::Response) -> u64 {
    let (headers, body) = expect_error(response, 429, "too_many_streams", None).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("streams")),
        "{body}"
    );
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("Retry-After in whole seconds");
    assert!(retry_after >= 1);
    retry_after
}

/// Opens streams until one is admitted (200) or `limit` passes; 429s on the way are
/// fine. Returns the admitted response.
async fn admitted_within(f: &Function, limit: Duration) -> reqwest::Response {
    let deadline = Instant::now() + limit;
    loop {
        let response = http().get(f.url(STREAM)).send().await.expect("request");
        match response.status().as_u16() {
            200 => return response,
            429 => {}
            other => panic!(
                "unexpected {other}: {}",
                response.text().await.unwrap_or_default()
            ),
        }
        assert!(Instant::now() < deadline, "no slot freed within {limit:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eleventh_stream_from_one_client_is_refused_until_one_closes() {
    // Heartbeats every second: the function learns that a client left at its next write.
    // Eleven streams open at once, and a twelfth after one closes.
    let f = Function::on_shared(
        "cap",
        &[
            ("HEARTBEAT_SECONDS", "1"),
            (common::function::CONCURRENCY, "16"),
        ],
    )
    .await;
    let mut open = Vec::new();
    for _ in 0..10 {
        open.push(f.subscribe(STREAM).await.0);
    }
    let refused = http().get(f.url(STREAM)).send().await.expect("request");
    let retry_after = expect_too_many(refused).await;
    // The earliest stream closes at its cap (270 s by default), no later.
    assert!(retry_after <= 270, "Retry-After {retry_after}");

    // One client leaves: its slot is freed once the function notices (next heartbeat).
    drop(open.pop());
    let mut eleventh = admitted_within(&f, 30 * SECOND).await;
    assert_eq!(eleventh.headers()["content-type"], "text/event-stream");
    let first = eleventh
        .chunk()
        .await
        .expect("body")
        .expect("a first chunk");
    assert!(first.starts_with(b"retry: "), "a real stream");
    // And the cap holds again.
    expect_too_many(http().get(f.url(STREAM)).send().await.expect("request")).await;
    drop(eleventh);
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_ends_at_its_cap_frees_its_slot() {
    let f = Function::on_shared(
        "capclose",
        &[("MAX_STREAMS_PER_CLIENT", "1"), ("STREAM_MAX_SECONDS", "3")],
    )
    .await;
    let (mut sub, _) = f.subscribe(STREAM).await;
    expect_too_many(http().get(f.url(STREAM)).send().await.expect("request")).await;
    let first = sub.read_connection(30 * SECOND).await;
    assert!(first.closed, "the stream ends at its cap");
    // Released before the response ended: the next stream is admitted at once.
    let next = http().get(f.url(STREAM)).send().await.expect("request");
    assert_eq!(next.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leases_of_a_killed_function_lapse() {
    let endpoint = common::DynamoLocal::shared_endpoint().await;
    let env = [
        ("MAX_STREAMS_PER_CLIENT", "2"),
        ("STREAM_MAX_SECONDS", "6"),
        ("STREAM_LEASE_GRACE_SECONDS", "1"),
    ];
    let mut first = Function::start(&endpoint, "capkill", &env).await;
    let opened = Instant::now();
    let a = first.subscribe(STREAM).await.0;
    let b = first.subscribe(STREAM).await.0;
    // Killed with its two streams open: nothing releases their leases.
    first.kill_hard();
    drop((a, b));

    let second = Function::start_on_table(&endpoint, &first.table, &env).await;
    let refused = http()
        .get(second.url(STREAM))
        .send()
        .await
        .expect("request");
    if opened.elapsed() < 6 * SECOND {
        // Still within the dead streams' lifetime: their slots are taken.
        expect_too_many(refused).await;
    }
    let admitted = admitted_within(&second, 60 * SECOND).await;
    assert!(
        opened.elapsed() >= 7 * SECOND,
        "admitted after {:?}, before the dead leases lapsed (6 s cap + 1 s grace)",
        opened.elapsed()
    );
    drop(admitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openers_racing_past_the_cap_never_exceed_it() {
    use firehose::store::dynamo::DynamoFeedStore;
    use firehose::stream_cap::{admit, Admission, CapSettings};
    use std::sync::Arc;

    let endpoint = common::DynamoLocal::shared_endpoint().await;
    let table = common::dynamo::fresh_table(&endpoint, "caprace").await;
    // Separate clients, as separate instances would have.
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(DynamoFeedStore::new(
            common::dynamo::client(&endpoint).await,
            &table,
            1,
            Duration::from_secs(86_400),
        )));
    }
    let settings = CapSettings {
        max_per_client: 3,
        stream_max: Duration::from_secs(60),
        grace: Duration::from_secs(5),
    };
    for round in 0..3 {
        // 24 openers at once for one client.
        let attempts = (0..24).map(|i| {
            let store = stores[i % stores.len()].clone();
            async move { admit(store, "198.51.100.7", &settings).await }
        });
        let outcomes = futures_util::future::join_all(attempts).await;
        let mut leases = Vec::new();
        for outcome in outcomes {
            match outcome.expect("the store answers") {
                Admission::Admitted(lease) => leases.push(lease),
                Admission::Refused { retry_after } => assert!(retry_after >= SECOND),
            }
        }
        assert_eq!(leases.len(), 3, "round {round}: exactly the cap admitted");
        let mut slots: Vec<u32> = leases.iter().map(|l| l.slot()).collect();
        slots.sort();
        assert_eq!(slots, [0, 1, 2]);
        // Released, the slots are free for the next round.
        for lease in leases {
            lease.release().await;
        }
    }
}

/// The batch read of leases the lease checks use (superseding): more keys than one
/// BatchGetItem takes (100), a key named twice (DynamoDB refuses a request that names
/// one twice), and slots without a lease, answered in the order asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leases_of_many_streams_are_read_in_batches_in_the_order_asked() {
    use firehose::store::dynamo::DynamoFeedStore;
    use firehose::store::{LeaseRecord, StreamLeases};

    let endpoint = common::DynamoLocal::shared_endpoint().await;
    let table = common::dynamo::fresh_table(&endpoint, "holders").await;
    let store = DynamoFeedStore::new(
        common::dynamo::client(&endpoint).await,
        &table,
        1,
        Duration::from_secs(86_400),
    );
    let lease = |client: usize, slot: u32| LeaseRecord {
        slot,
        stream_id: format!("s{client}x{slot}"),
        resumed_from: (slot == 1).then(|| "earlier".to_owned()),
        expires_ms: 4_000_000_000_000,
    };
    // 70 clients with 3 slots each held: 210 leases.
    let mut keys = Vec::new();
    for client in 0..70 {
        for slot in 0..3 {
            let address = format!("203.0.113.{client}");
            assert!(store
                .claim(&address, &lease(client, slot), 1_000)
                .await
                .expect("claim"));
            keys.push((address, slot));
        }
    }
    // Slots nobody holds, and a key named twice.
    keys.insert(17, ("203.0.113.200".to_owned(), 0));
    keys.push(("203.0.113.5".to_owned(), 9));
    keys.push(keys[40].clone());

    let holders = store.holders(&keys).await.expect("the store answers");
    assert_eq!(holders.len(), keys.len());
    for ((address, slot), holder) in keys.iter().zip(&holders) {
        let client: usize = address.rsplit('.').next().unwrap().parse().unwrap();
        if client < 70 && *slot < 3 {
            assert_eq!(
                holder.as_ref(),
                Some(&lease(client, *slot)),
                "{address} {slot}"
            );
        } else {
            assert_eq!(holder, &None, "{address} {slot}");
        }
    }
    assert!(store
        .holders(&[])
        .await
        .expect("nothing to read")
        .is_empty());
}
