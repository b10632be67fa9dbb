//! Property-based fuzzing (proptest; `cargo fuzz` needs a nightly toolchain) of every
//! parser that reads what a client sends: the stream's and the backfill's query
//! strings, `Last-Event-ID`, cursors, page tokens, publish bodies and PATCH bodies. For any input: no panic, and a refusal
//! goes through the same error mapping as the function's and comes out as the
//! contract's JSON error (`{"error":{"code","param","message"}}`, 400 or 422).
//!
//! Inputs: the seed corpus in tests/fuzz_corpus/ (each seed as it is, then mutated),
//! and generated ones. Cases per property: `PROPTEST_CASES` (scripts/test sets a
//! bounded number; the README says how to run longer).

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use firehose::backfill::{fingerprint, PageToken};
use firehose::bounty::patch::Patch;
use firehose::bounty::{
    is_slug, BountyDraft, BountyStatus, MAX_DESCRIPTION_CHARS, MAX_TAGS, MAX_TITLE_CHARS,
};
use firehose::cursor::{Cursor, CursorRules, Position};
use firehose::filter::{Filter, MAX_FILTER_VALUES};
use firehose::http::{body::collect, ApiError};
use firehose::query::{parse_list_query, parse_stream_query, MAX_CURSOR_LEN, MAX_LIST_LIMIT};
use firehose::{timefmt, InputError};
use proptest::prelude::*;
use serde_json::Value;

fn corpus(name: &str) -> Vec<String> {
    let path = format!("{}/tests/fuzz_corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

/// The refusal as the function would send it: checks the status and the JSON shape.
fn assert_contract_error(err: InputError) {
    let expected_param = err.param.clone();
    let response = ApiError::from(err).into_response();
    let status = response.status().as_u16();
    assert!(status == 400 || status == 422, "status {status}");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = runtime().block_on(collect(response.into_body()));
    let json: Value = serde_json::from_slice(&body).expect("the error body is JSON");
    let object = json.as_object().expect("an object");
    assert_eq!(object.len(), 1, "{json}");
    let error = json["error"].as_object().expect("an error object");
    assert_eq!(error.len(), 3, "{json}");
    let code = error["code"].as_str().expect("code");
    assert!(
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "{json}"
    );
    assert_eq!(
        error["param"].as_str(),
        Some(expected_param.as_str()),
        "{json}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
}

/// A seed with a few byte-level edits (insert, delete, replace), kept as text.
fn mutated(seeds: Vec<String>) -> impl Strategy<Value = String> {
    let edits = prop::collection::vec((0usize..3, any::<prop::sample::Index>(), any::<u8>()), 0..6);
    (prop::sample::select(seeds), edits).prop_map(|(seed, edits)| {
        let mut bytes = seed.into_bytes();
        for (op, at, byte) in edits {
            let len = bytes.len();
            match op {
                0 => bytes.insert(at.index(len + 1), byte),
                1 if len > 0 => {
                    bytes.remove(at.index(len));
                }
                _ if len > 0 => bytes[at.index(len)] = byte,
                _ => bytes.push(byte),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

// ---------------------------------------------------------------- stream query

const PARAMS: &[&str] = &[
    "category",
    "tag",
    "min_budget_cents",
    "deadline_after",
    "since",
    "last_event_id",
    "limit",
    "page_token",
    "",
    "Category",
];

fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,40}",
        "[a-z0-9,-]{0,80}",
        "-?[0-9]{0,25}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+ -][0-9]{2}:[0-9]{2})",
        "[A-Za-z0-9_=-]{0,64}",
        any::<String>(),
    ]
}

/// Query strings built from the real parameter names, percent-encoded like a client would.
fn structured_query() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(PARAMS), query_value()), 0..30).prop_map(|pairs| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    })
}

fn check_stream_query(query: &str, header: Option<&str>) {
    // What the function does with the raw query string (http::query_pairs).
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    match parse_stream_query(&pairs, header) {
        Ok(parsed) => {
            let filter = &parsed.filter;
            assert!(filter.categories.len() <= MAX_FILTER_VALUES);
            assert!(filter.tags.len() <= MAX_FILTER_VALUES);
            assert!(filter
                .categories
                .iter()
                .chain(&filter.tags)
                .all(|s| is_slug(s)));
            assert!(
                filter.categories.windows(2).all(|w| w[0] < w[1]),
                "sorted, unique"
            );
            serde_json::to_string(filter).expect("the filter echoes as JSON");
        }
        Err(err) => assert_contract_error(err),
    }
}

proptest! {
    #[test]
    fn stream_query_seeds_and_mutations(query in mutated(corpus("stream_query.txt"))) {
        check_stream_query(&query, None);
    }

    #[test]
    fn stream_query_structured(query in structured_query(), header in proptest::option::of(".{0,80}")) {
        check_stream_query(&query, header.as_deref());
    }

    #[test]
    fn stream_query_raw(query in any::<Vec<u8>>()) {
        check_stream_query(&String::from_utf8_lossy(&query), None);
    }
}

#[test]
fn every_stream_query_seed_as_it_is() {
    for query in corpus("stream_query.txt") {
        check_stream_query(&query, None);
    }
}

// ---------------------------------------------------------------- backfill query

fn check_list_query(query: &str) {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    match parse_list_query(&pairs) {
        Ok(parsed) => {
            assert!((1..=MAX_LIST_LIMIT).contains(&parsed.limit));
            assert!(parsed
                .page_token
                .as_ref()
                .is_none_or(|t| !t.is_empty() && t.len() <= MAX_CURSOR_LEN));
            let filter = &parsed.filter;
            assert!(filter.categories.len() <= MAX_FILTER_VALUES);
            assert!(filter.tags.len() <= MAX_FILTER_VALUES);
            assert!(filter
                .categories
                .iter()
                .chain(&filter.tags)
                .all(|s| is_slug(s)));
        }
        Err(err) => assert_contract_error(err),
    }
}

proptest! {
    #[test]
    fn list_query_seeds_and_mutations(query in mutated(corpus("list_query.txt"))) {
        check_list_query(&query);
    }

    #[test]
    fn list_query_structured(query in structured_query()) {
        check_list_query(&query);
    }

    #[test]
    fn list_query_raw(query in any::<Vec<u8>>()) {
        check_list_query(&String::from_utf8_lossy(&query));
    }
}

#[test]
fn every_list_query_seed_as_it_is() {
    for query in corpus("list_query.txt") {
        check_list_query(&query);
    }
}

// ---------------------------------------------------------------- page tokens

fn check_page_token(text: &str, shards: usize) {
    let filter = Filter::default();
    match PageToken::decode(text, &filter, shards) {
        Ok(token) => {
            assert_eq!(token.before.len(), shards);
            let again = PageToken::decode(&token.encode(), &filter, shards);
            assert_eq!(again, Ok(token));
        }
        Err(err) => {
            assert_eq!(err.code.as_str(), "invalid_page_token", "{err:?}");
            assert_contract_error(err);
        }
    }
}

/// Tokens as the server issues them (for the empty filter, or another), some mutated.
fn near_token() -> impl Strategy<Value = (String, usize)> {
    let position = (0u64..=9_999_999_999_999, 0u64..=1_000_000_000_000)
        .prop_map(|(created_ms, seq)| Position { created_ms, seq });
    (1usize..4)
        .prop_flat_map(move |shards| {
            (
                Just(shards),
                prop::collection::vec(position.clone(), shards),
                prop::collection::vec(proptest::option::of(position.clone()), shards),
                any::<bool>(),
                0u64..=NOW_MS,
            )
        })
        .prop_map(|(shards, heads, before, same_filter, issued_ms)| {
            let filter_fingerprint = if same_filter {
                fingerprint(&Filter::default())
            } else {
                fingerprint(&Filter {
                    min_budget_cents: Some(1),
                    ..Filter::default()
                })
            };
            let token = PageToken {
                snapshot: Cursor {
                    issued_ms,
                    positions: heads,
                },
                filter_fingerprint,
                before,
            };
            (token.encode(), shards)
        })
}

proptest! {
    #[test]
    fn page_token_seeds_and_mutations(text in mutated(corpus("page_token.txt")), shards in 1usize..4) {
        check_page_token(&text, shards);
    }

    #[test]
    fn page_token_structured((text, shards) in near_token(), other_shards in 1usize..4) {
        check_page_token(&text, shards);
        check_page_token(&text, other_shards);
    }

    #[test]
    fn page_token_structured_mutated(text in mutated(vec![PageToken {
        snapshot: Cursor { issued_ms: NOW_MS, positions: vec![Position { created_ms: NOW_MS, seq: 7 }] },
        filter_fingerprint: fingerprint(&Filter::default()),
        before: vec![Some(Position { created_ms: NOW_MS - 5, seq: 3 })],
    }.encode()])) {
        check_page_token(&text, 1);
    }

    #[test]
    fn page_token_raw(text in any::<String>(), shards in 1usize..4) {
        check_page_token(&text, shards);
    }
}

#[test]
fn every_page_token_seed_as_it_is() {
    for text in corpus("page_token.txt") {
        check_page_token(&text, 1);
    }
}

// ---------------------------------------------------------------- cursors

const NOW_MS: u64 = 1_800_000_000_000;

fn rules(shards: usize) -> CursorRules {
    CursorRules {
        shards,
        now_ms: NOW_MS,
        lookback_ms: 86_400_000,
    }
}

fn check_cursor(text: &str, shards: usize) {
    match Cursor::decode(text, "Last-Event-ID", rules(shards)) {
        Ok(cursor) => {
            assert_eq!(cursor.positions.len(), shards);
            // What the server issues again from it decodes to the same cursor.
            let again = Cursor::decode(&cursor.encode(), "Last-Event-ID", rules(shards));
            assert_eq!(again, Ok(cursor));
        }
        Err(err) => {
            assert!(
                matches!(err.code.as_str(), "invalid_cursor" | "cursor_too_old"),
                "{err:?}"
            );
            assert_contract_error(err);
        }
    }
}

/// Cursor plaintexts near the real format, base64url-encoded (padded or not).
fn near_cursor() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        Just(NOW_MS.to_string()),
        Just((NOW_MS - 1000).to_string()),
        "[0-9]{0,22}",
        "-?[0-9a-f]{1,5}",
    ];
    let position = (number.clone(), number.clone()).prop_map(|(ms, seq)| format!("{ms}-{seq}"));
    (
        prop_oneof![Just("1".to_owned()), "[0-9]{0,2}"],
        number,
        prop::collection::vec(position, 0..5),
        any::<bool>(),
    )
        .prop_map(|(version, issued, positions, pad)| {
            use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
            use base64::Engine;
            let mut text = format!("{version}.{issued}");
            for position in positions {
                text.push('.');
                text.push_str(&position);
            }
            if pad {
                URL_SAFE.encode(text)
            } else {
                URL_SAFE_NO_PAD.encode(text)
            }
        })
}

proptest! {
    #[test]
    fn cursor_seeds_and_mutations(text in mutated(corpus("cursor.txt")), shards in 1usize..5) {
        check_cursor(&text, shards);
    }

    #[test]
    fn cursor_structured(text in near_cursor(), shards in 1usize..5) {
        check_cursor(&text, shards);
    }

    #[test]
    fn cursor_raw(text in any::<String>(), shards in 1usize..5) {
        check_cursor(&text, shards);
    }
}

#[test]
fn every_cursor_seed_as_it_is() {
    for text in corpus("cursor.txt") {
        check_cursor(&text, 1);
    }
}

// ---------------------------------------------------------------- publish bodies

fn now() -> DateTime<Utc> {
    timefmt::from_millis(NOW_MS)
}

fn check_publish_body(body: &[u8]) {
    match BountyDraft::from_json(body, now()) {
        Ok(draft) => {
            let title = draft.title.chars().count();
            assert!((1..=MAX_TITLE_CHARS).contains(&title));
            assert!(draft.description.chars().count() <= MAX_DESCRIPTION_CHARS);
            assert!(is_slug(&draft.category));
            assert!(draft.budget_cents > 0);
            assert!(draft.tags.len() <= MAX_TAGS && draft.tags.iter().all(|t| is_slug(t)));
            assert!(draft.deadline > now());
            let bounty = draft.into_bounty("01TEST".into(), now());
            serde_json::to_vec(&bounty).expect("the bounty serialises");
        }
        Err(err) => assert_contract_error(err),
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,30}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "title",
    "description",
    "category",
    "budget_cents",
    "currency",
    "tags",
    "deadline",
    "id",
    "status",
];

/// Valid bodies with some fields replaced, removed or added.
fn near_body() -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec(
        (
            prop::sample::select(FIELDS),
            proptest::option::of(json_value()),
        ),
        0..4,
    );
    edits.prop_map(|edits| {
        let mut body = serde_json::json!({
            "title": "Fix flaky test",
            "description": "d",
            "category": "python",
            "budget_cents": 50000,
            "tags": ["pytest"],
            "deadline": "2099-01-01T00:00:00Z",
        });
        let object = body.as_object_mut().expect("object");
        for (field, value) in edits {
            match value {
                Some(value) => {
                    object.insert(field.to_owned(), value);
                }
                None => {
                    object.remove(field);
                }
            }
        }
        serde_json::to_vec(&body).expect("serialise")
    })
}

proptest! {
    #[test]
    fn publish_body_seeds_and_mutations(body in mutated(corpus("publish_body.txt"))) {
        check_publish_body(body.as_bytes());
    }

    #[test]
    fn publish_body_near_valid(body in near_body()) {
        check_publish_body(&body);
    }

    #[test]
    fn publish_body_any_json(value in json_value()) {
        check_publish_body(&serde_json::to_vec(&value).expect("serialise"));
    }

    #[test]
    fn publish_body_raw(body in any::<Vec<u8>>()) {
        check_publish_body(&body);
    }
}

#[test]
fn every_publish_body_seed_as_it_is() {
    for body in corpus("publish_body.txt") {
        check_publish_body(body.as_bytes());
    }
}

// ---------------------------------------------------------------- PATCH bodies

/// An open bounty, as a PATCH finds it.
fn open_bounty() -> firehose::bounty::Bounty {
    let body = br#"{"title":"Fix flaky test","category":"python","budget_cents":50000,"tags":["pytest"],"deadline":"2099-01-01T00:00:00Z"}"#;
    BountyDraft::from_json(body, now())
        .expect("valid")
        .into_bounty("01TEST".into(), now())
}

/// For any body: a refusal is the contract's error naming a field (nothing is applied),
/// or a patch whose result is a valid bounty one version on, or no change at all.
fn check_patch_body(body: &[u8]) {
    match Patch::from_json(body, now()) {
        Ok(patch) => {
            let before = open_bounty();
            let Some(after) = patch.apply(&before, now()) else {
                return;
            };
            assert_eq!(after.version, before.version + 1);
            assert_eq!(
                (&after.id, &after.category, &after.currency),
                (&before.id, &before.category, &before.currency)
            );
            let title = after.title.chars().count();
            assert!((1..=MAX_TITLE_CHARS).contains(&title));
            assert!(after.description.chars().count() <= MAX_DESCRIPTION_CHARS);
            assert!(after.budget_cents > 0);
            assert!(after.tags.len() <= MAX_TAGS && after.tags.iter().all(|t| is_slug(t)));
            assert!(after.deadline > now());
            match after.status {
                BountyStatus::Closed => {
                    assert!(after.close_reason.is_some() && after.closed_at.is_some())
                }
                _ => assert!(after.close_reason.is_none() && after.closed_at.is_none()),
            }
            serde_json::to_vec(&after).expect("the bounty serialises");
        }
        // The refusal names its field (`param`, checked there).
        Err(err) => assert_contract_error(err),
    }
}

const PATCH_FIELDS: &[&str] = &[
    "title",
    "description",
    "budget_cents",
    "tags",
    "deadline",
    "status",
    "close_reason",
    "category",
    "version",
];

/// Small valid patches with some fields replaced, removed or added.
fn near_patch() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![
        Just(serde_json::json!({"title": "New", "budget_cents": 900})),
        Just(serde_json::json!({"tags": ["ci"], "deadline": "2099-06-01T00:00:00Z"})),
        Just(serde_json::json!({"status": "closed", "close_reason": "awarded"})),
    ];
    let edits = prop::collection::vec(
        (
            prop::sample::select(PATCH_FIELDS),
            proptest::option::of(json_value()),
        ),
        0..3,
    );
    (base, edits).prop_map(|(mut body, edits)| {
        let object = body.as_object_mut().expect("object");
        for (field, value) in edits {
            match value {
                Some(value) => {
                    object.insert(field.to_owned(), value);
                }
                None => {
                    object.remove(field);
                }
            }
        }
        serde_json::to_vec(&body).expect("serialise")
    })
}

proptest! {
    #[test]
    fn patch_body_seeds_and_mutations(body in mutated(corpus("patch_body.txt"))) {
        check_patch_body(body.as_bytes());
    }

    #[test]
    fn patch_body_near_valid(body in near_patch()) {
        check_patch_body(&body);
    }

    #[test]
    fn patch_body_any_json(value in json_value()) {
        check_patch_body(&serde_json::to_vec(&value).expect("serialise"));
    }

    #[test]
    fn patch_body_raw(body in any::<Vec<u8>>()) {
        check_patch_body(&body);
    }
}

#[test]
fn every_patch_body_seed_as_it_is() {
    for body in corpus("patch_body.txt") {
        check_patch_body(body.as_bytes());
    }
}

// ---------------------------------------------------------------- coverage

/// The generators reach both sides of every parser: a property that only ever saw
/// refusals (or only acceptances) would prove little.
#[test]
fn generators_reach_acceptance_and_refusal() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    fn sample<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
        let mut runner = TestRunner::deterministic();
        (0..n)
            .map(|_| strategy.new_tree(&mut runner).expect("value").current())
            .collect()
    }
    fn both(what: &str, outcomes: impl Iterator<Item = bool>) {
        let (ok, err) = outcomes.fold(
            (0, 0),
            |(ok, err), o| if o { (ok + 1, err) } else { (ok, err + 1) },
        );
        assert!(ok > 0 && err > 0, "{what}: {ok} accepted, {err} refused");
    }
    let parse = |query: &String| {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        parse_stream_query(&pairs, None).is_ok()
    };
    both(
        "stream query seeds and mutations",
        sample(mutated(corpus("stream_query.txt")), 300)
            .iter()
            .map(parse),
    );
    both(
        "structured stream query",
        sample(structured_query(), 300).iter().map(parse),
    );
    both(
        "structured cursor",
        sample(near_cursor(), 300)
            .iter()
            .map(|text| Cursor::decode(text, "Last-Event-ID", rules(2)).is_ok()),
    );
    both(
        "publish body seeds and mutations",
        sample(mutated(corpus("publish_body.txt")), 300)
            .iter()
            .map(|body| BountyDraft::from_json(body.as_bytes(), now()).is_ok()),
    );
    both(
        "near-valid publish body",
        sample(near_body(), 300)
            .iter()
            .map(|body| BountyDraft::from_json(body, now()).is_ok()),
    );
    both(
        "PATCH body seeds and mutations",
        sample(mutated(corpus("patch_body.txt")), 300)
            .iter()
            .map(|body| Patch::from_json(body.as_bytes(), now()).is_ok()),
    );
    both(
        "near-valid PATCH body",
        sample(near_patch(), 300)
            .iter()
            .map(|body| Patch::from_json(body, now()).is_ok()),
    );
}
