//! The figures as a terminal table, as Markdown for docs/benchmarks.md, and as JSON.
//!
//! Why one file past 400 lines: the three renderings read the same rows, and most of
//! the length is `rows`, one entry per figure with its target, in the order the
//! documentation lists them; spread over files, a figure and its target would drift.

use std::time::Duration;

use serde_json::{json, Value};

use crate::cost::{self, CostModel, ManagedCost};
use crate::scenarios::idle_shared::{FEED_SHARDS, POLL_MS};
use crate::scenarios::{
    fanout, BurstResult, FanoutResult, IdleResult, IdleSharedResult, LatencyResult, StartupResult,
};
use crate::stats::{ms, Summary};

#[derive(Default)]
pub struct Results {
    pub latency: Vec<LatencyResult>,
    pub burst: Option<BurstResult>,
    pub idle: Option<IdleResult>,
    pub idle_shared: Vec<IdleSharedResult>,
    pub fanout: Vec<FanoutResult>,
    pub startup: Option<StartupResult>,
}

/// One line of the summary: what, the figure, the target, whether it is met.
struct Row {
    what: String,
    figure: String,
    target: String,
    met: Option<bool>,
}

fn row(
    what: impl Into<String>,
    figure: impl Into<String>,
    target: impl Into<String>,
    met: Option<bool>,
) -> Row {
    Row {
        what: what.into(),
        figure: figure.into(),
        target: target.into(),
        met,
    }
}

fn percentiles(summary: &Option<Summary>) -> String {
    match summary {
        Some(s) => format!(
            "{} / {} / {} / {}",
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max)
        ),
        None => "no samples".to_owned(),
    }
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn mib_bytes(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / (1024.0 * 1024.0))
}

fn cost_model(results: &Results) -> Option<CostModel> {
    let idle = results.idle.as_ref()?;
    let burst = results.burst.as_ref()?;
    Some(CostModel::new(
        idle.requests_per_minute(),
        burst.bytes_per_event,
        burst.item_bytes,
    ))
}

/// The managed model's input: the largest N measured with the shared read on under
/// the emulator (the LMI-like local run), its streams and Queries/s.
fn managed_cost(results: &Results) -> Option<(ManagedCost, &IdleSharedResult)> {
    let run = results
        .idle_shared
        .iter()
        .filter(|r| r.shared)
        .max_by_key(|r| (r.streams, r.via == "cargo lambda watch"))?;
    Some((ManagedCost::new(run.streams, run.queries_per_second()), run))
}

/// The same N with the shared read off, run the same way.
fn counterpart<'a>(results: &'a Results, run: &IdleSharedResult) -> Option<&'a IdleSharedResult> {
    results
        .idle_shared
        .iter()
        .find(|r| !r.shared && r.streams == run.streams && r.via == run.via)
}

fn percent4([store, function, emulator, client]: [f64; 4], emulated: bool) -> String {
    let emulator = if emulated {
        format!("{emulator:.1} %")
    } else {
        "none".to_owned()
    };
    format!("{store:.1} % / {function:.1} % / {emulator} / {client:.1} %")
}

fn rows(results: &Results) -> Vec<Row> {
    let mut rows = Vec::new();
    for l in &results.latency {
        let target_ms = l.poll_ms + 300;
        let met = l
            .summary
            .map(|s| s.p99.as_millis() as u64 <= target_ms && l.missing == 0);
        rows.push(row(
            format!(
                "1. latency, POLL_INTERVAL_MS={} ({} bounties): p50 / p90 / p99 / max",
                l.poll_ms, l.published
            ),
            percentiles(&l.summary),
            format!("p99 <= {target_ms} ms"),
            met,
        ));
        if l.missing > 0 || l.duplicates > 0 {
            rows.push(row(
                "   delivery problems",
                format!("{} missing, {} duplicated", l.missing, l.duplicates),
                "none",
                Some(false),
            ));
        }
    }
    if let Some(b) = &results.burst {
        rows.push(row(
            format!(
                "2. burst: write {} bounties (batch append, {} per transaction)",
                b.bounties,
                firehose::publish::MAX_BATCH
            ),
            format!("{:.1} s", b.write.as_secs_f64()),
            "",
            None,
        ));
        let secs = |times: &mut dyn Iterator<Item = Duration>| {
            times
                .map(|t| format!("{:.2}", t.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let delivered = b
            .drains
            .iter()
            .map(|d| d.delivered.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(row(
            format!(
                "2. burst: one stream delivers all (median of {} streams)",
                b.drains.len()
            ),
            format!(
                "{:.2} s = {:.0} events/s (first after {}; streams: {} s; delivered: {})",
                b.stream_time().as_secs_f64(),
                b.stream_rate(),
                ms(b.first_event()),
                secs(&mut b.drains.iter().map(|d| d.time)),
                delivered,
            ),
            format!("all {}", b.bounties),
            Some(b.all_delivered()),
        ));
        rows.push(row(
            format!(
                "2. burst: raw store, same Query pattern, no function (median of {} reads)",
                b.raw_times.len()
            ),
            format!(
                "{:.0} items/s (reads of {} items: {} s)",
                b.raw_rate(),
                b.raw_items,
                secs(&mut b.raw_times.iter().copied()),
            ),
            "",
            None,
        ));
        let [store, function, emulator, client] = b.drain_cpu.seconds_per(b.drains.len());
        rows.push(row(
            "2. burst: CPU per stream (mean): store / function / emulator / client",
            format!(
                "{store:.2} / {function:.2} / {emulator:.2} / {client:.2} s = {:.2} CPU-s over {:.2} s",
                store + function + emulator + client,
                b.drains.iter().map(|d| d.time.as_secs_f64()).sum::<f64>()
                    / b.drains.len().max(1) as f64,
            ),
            "",
            None,
        ));
        let [store, _, _, reader] = b.raw_cpu.seconds_per(b.raw_times.len());
        rows.push(row(
            "2. burst: CPU per raw read (mean): store / reader",
            format!(
                "{store:.2} / {reader:.2} s = {:.2} CPU-s over {:.2} s",
                store + reader,
                b.raw_times.iter().map(Duration::as_secs_f64).sum::<f64>()
                    / b.raw_times.len().max(1) as f64,
            ),
            "",
            None,
        ));
        let ratio = b.stream_rate() / b.raw_rate();
        rows.push(row(
            "2. burst: stream / raw store",
            format!("{ratio:.2}x"),
            ">= 0.80x",
            Some(ratio >= 0.8),
        ));
    }
    if let Some(i) = &results.idle {
        let ops = i
            .requests
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(row(
            format!("3. idle stream, {:.0} s: function CPU", i.seconds),
            format!(
                "{:.3} s = {:.2} % of a core ({} instance process)",
                i.cpu_seconds,
                i.cpu_percent(),
                i.instances
            ),
            "<= 1 % of a core",
            Some(i.cpu_percent() <= 1.0),
        ));
        rows.push(row(
            "3. idle stream: peak RSS (VmHWM; RSS at end)",
            format!("{} ({})", mb(i.peak_rss_kb), mb(i.rss_kb)),
            "<= 32 MB",
            Some(i.peak_rss_kb <= 32 * 1024),
        ));
        rows.push(row(
            "3. idle stream: DynamoDB requests per minute",
            format!(
                "{:.1} ({ops} in {:.0} s)",
                i.requests_per_minute(),
                i.seconds
            ),
            "",
            None,
        ));
    }
    for r in &results.idle_shared {
        let n = r.streams;
        let mode = if r.shared { "on" } else { "off" };
        let cpu = r.cpu_percent();
        let (target, met) = if r.shared && n >= 1000 {
            (
                "<= 5 % of a core, peak RSS <= 100 MB".to_owned(),
                Some(cpu <= 5.0 && r.peak_rss_kb <= 100 * 1024),
            )
        } else {
            (String::new(), None)
        };
        rows.push(row(
            format!(
                "3b. N = {n} idle streams in one process, shared read {mode} ({}): function CPU; RSS (peak)",
                r.via
            ),
            format!(
                "{cpu:.2} % of a core over {:.0} s ({} process); {} ({})",
                r.seconds,
                r.processes,
                mb(r.rss_kb),
                mb(r.peak_rss_kb)
            ),
            target,
            met,
        ));
        // With their rate: the lease checks of superseding are BatchGetItem requests.
        let others = r
            .requests
            .iter()
            .filter(|(op, _)| op.as_str() != "Query")
            .map(|(op, n)| format!("{op} {n} = {:.2}/s", *n as f64 / r.seconds))
            .collect::<Vec<_>>()
            .join(", ");
        let (target, met) = if r.shared {
            (
                format!(
                    "<= FEED_SHARDS ({FEED_SHARDS}) per {POLL_MS} ms poll: <= {} in the window",
                    r.query_allowance()
                ),
                Some(r.queries() <= r.query_allowance()),
            )
        } else {
            (String::new(), None)
        };
        rows.push(row(
            "    DynamoDB: Queries/s (count in the window; other requests)",
            format!(
                "{:.2}/s ({}; {})",
                r.queries_per_second(),
                r.queries(),
                if others.is_empty() {
                    "none".to_owned()
                } else {
                    others
                }
            ),
            target,
            met,
        ));
        rows.push(row(
            "    CPU meanwhile: store / function / emulator / driver; streams opened in; events and ends in the window",
            format!(
                "{}; {:.1} s; {} events, {} streams ended (none expected)",
                percent4(r.cpu.percent_over(r.seconds), r.via == "cargo lambda watch"),
                r.open.as_secs_f64(),
                r.events,
                r.ended
            ),
            "",
            None,
        ));
    }
    for on in results
        .idle_shared
        .iter()
        .filter(|r| r.shared && r.streams >= 1000)
    {
        if let Some(off) = counterpart(results, on) {
            let ratio = off.cpu_percent() / on.cpu_percent().max(1e-9);
            rows.push(row(
                format!(
                    "3b. N = {} idle streams ({}): function CPU, shared read off / on",
                    on.streams, on.via
                ),
                format!(
                    "{ratio:.1}x ({:.2} % / {:.2} %)",
                    off.cpu_percent(),
                    on.cpu_percent()
                ),
                ">= 20x",
                Some(ratio >= 20.0),
            ));
        }
    }
    let (p50_target, p99_target) = fanout::targets_ms();
    for f in &results.fanout {
        let expected = f.streams * f.bounties;
        rows.push(row(
            format!(
                "4. fan-out, one process ({}): {} streams x {} bounties delivered",
                f.via, f.streams, f.bounties
            ),
            format!(
                "{} of {} ({} missing, {} duplicated, {} unexpected; {} of {} streams complete)",
                f.delivered,
                expected,
                f.missing,
                f.duplicates,
                f.unexpected,
                f.complete_streams,
                f.streams
            ),
            "all, once",
            Some(f.all_once()),
        ));
        rows.push(row(
            format!(
                "4. fan-out latency ({}, POLL_INTERVAL_MS={POLL_MS}): p50 / p90 / p99 / max",
                f.via
            ),
            percentiles(&f.summary),
            format!("p50 <= {p50_target} ms, p99 <= {p99_target} ms"),
            f.summary.map(|s| {
                s.p50.as_millis() as u64 <= p50_target && s.p99.as_millis() as u64 <= p99_target
            }),
        ));
        rows.push(row(
            "    CPU from first publish to last delivery: store / function / emulator / driver; streams opened in",
            format!(
                "{} over {:.1} s; {:.1} s",
                percent4(f.cpu.percent_over(f.seconds), f.via == "cargo lambda watch"),
                f.seconds,
                f.open.as_secs_f64()
            ),
            "",
            None,
        ));
    }
    if let Some(s) = &results.startup {
        rows.push(row(
            format!(
                "5. init: process start to first runtime API call (p50 / max of {})",
                s.runs
            ),
            format!("{} / {}", ms(s.init.p50), ms(s.init.max)),
            "<= 50 ms",
            Some(s.init.p50.as_millis() <= 50),
        ));
        rows.push(row(
            "5. process start to first response (a stream: GetItem of the head, then headers)",
            format!(
                "{} / {}",
                ms(s.first_response.p50),
                ms(s.first_response.max)
            ),
            "",
            None,
        ));
        let stripped = s.stripped_bytes.unwrap_or(s.binary_bytes);
        rows.push(row(
            "5. release binary (x86_64 here; as built / after strip)",
            format!(
                "{} / {}",
                mib_bytes(s.binary_bytes),
                s.stripped_bytes
                    .map_or("strip not found".to_owned(), mib_bytes)
            ),
            "stripped <= 15 MB",
            Some(stripped <= 15 * 1024 * 1024),
        ));
    }
    if let Some(c) = cost_model(results) {
        rows.push(row(
            "6. cost per subscriber-hour, classic (one environment per stream, us-east-1)",
            format!("${:.6}", c.per_subscriber_hour()),
            "",
            None,
        ));
    }
    if let Some((m, run)) = managed_cost(results) {
        rows.push(row(
            format!(
                "6. cost per subscriber-hour, managed ({} streams per {}, measured {})",
                m.streams,
                cost::INSTANCE_TYPE,
                run.via
            ),
            format!("${:.6}", m.per_subscriber_hour()),
            "",
            None,
        ));
    }
    if let Some(c) = cost_model(results) {
        rows.push(row(
            "6. cost per million delivered events (on top)",
            format!("${:.4}", c.per_million_events()),
            "",
            None,
        ));
    }
    rows
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "",
    }
}

/// A plain-text table for the terminal.
pub fn table(results: &Results) -> String {
    let rows = rows(results);
    let w0 = rows.iter().map(|r| r.what.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.figure.len()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.target.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in rows {
        out.push_str(&format!(
            "{:w0$}  {:w1$}  {:w2$}  {}\n",
            r.what,
            r.figure,
            r.target,
            verdict(r.met)
        ));
    }
    out
}

/// The figures section of docs/benchmarks.md (the script adds the machine).
pub fn markdown(results: &Results) -> String {
    let mut out = String::from("| measurement | figure | target | |\n| --- | --- | --- | --- |\n");
    for r in rows(results) {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.what.trim(),
            r.figure,
            r.target,
            verdict(r.met)
        ));
    }
    if let (Some(c), Some(i), Some(b)) = (cost_model(results), &results.idle, &results.burst) {
        out.push_str(&format!(
            "\nCost model inputs from this run (prices as of {}; formulas below):\n\n\
             | input | value |\n| --- | --- |\n\
             | DynamoDB requests per idle stream-minute (`q`) | {:.1} |\n\
             | bytes per `bounty` frame on the wire (`b`) | {:.0} |\n\
             | stored entry size (`s`) | {} bytes |\n\n\
             | per subscriber-hour | $ |\n| --- | --- |\n\
             | Lambda duration (3600 s x 0.125 GB x ${}/GB-s) | {:.6} |\n\
             | Lambda requests (3600 / {} s x $0.20/M) | {:.6} |\n\
             | DynamoDB reads (60 x q RRU x $0.125/M) | {:.6} |\n\
             | **total** | **{:.6}** |\n\n\
             | per million delivered events | $ |\n| --- | --- |\n\
             | data transfer out (10^6 x b bytes x ${}/GB) | {:.4} |\n\
             | Lambda streamed bytes (10^6 x b bytes x ${}/GB) | {:.4} |\n\
             | DynamoDB reads (10^6 x s / 4096 RRU x $0.125/M) | {:.4} |\n\
             | **total** | **{:.4}** |\n",
            cost::PRICES_AS_OF,
            i.requests_per_minute(),
            b.bytes_per_event,
            b.item_bytes,
            cost::LAMBDA_ARM64_GB_SECOND,
            c.hour_lambda_duration,
            cost::STREAM_SECONDS,
            c.hour_lambda_requests,
            c.hour_dynamodb,
            c.per_subscriber_hour(),
            cost::TRANSFER_OUT_GB,
            c.million_transfer,
            cost::LAMBDA_STREAMED_GB,
            c.million_streaming,
            c.million_dynamodb,
            c.per_million_events(),
        ));
    }
    if let Some((m, run)) = managed_cost(results) {
        out.push_str(&format!(
            "\nManaged instances, per subscriber-hour, from this run's {} idle streams in one \
             process ({}, shared read on: {:.2} Queries/s for the process):\n\n\
             | per subscriber-hour | $ |\n| --- | --- |\n\
             | {} instance (${}/h / {} streams) | {:.7} |\n\
             | management fee ({:.0} % of the instance price) | {:.7} |\n\
             | Lambda requests (3600 / {} s x $0.20/M) | {:.7} |\n\
             | DynamoDB reads of the log ({:.2} Queries/s x 3600 RRU x $0.125/M / {} streams) | {:.9} |\n\
             | DynamoDB reads of the leases ({:.1} a second for the process, 1 RRU each: 3600 / {} s x $0.125/M) | {:.7} |\n\
             | **total** | **{:.7}** |\n\n\
             AWS caps one managed environment at {} concurrent invocations \
             (`PerExecutionEnvironmentMaxConcurrency`); the model takes the {} measured.\n",
            m.streams,
            run.via,
            run.queries_per_second(),
            cost::INSTANCE_TYPE,
            cost::INSTANCE_HOUR,
            m.streams,
            m.hour_instance,
            cost::MANAGEMENT_FEE * 100.0,
            m.hour_fee,
            cost::STREAM_SECONDS,
            m.hour_requests,
            run.queries_per_second(),
            m.streams,
            m.hour_dynamodb,
            m.lease_reads_per_second(),
            cost::LEASE_CHECK_SECONDS,
            m.hour_leases,
            m.per_subscriber_hour(),
            cost::MAX_CONCURRENCY_CAP,
            m.streams,
        ));
    }
    out
}

fn summary_json(summary: &Option<Summary>) -> Value {
    summary.map_or(Value::Null, |s| {
        json!({
            "count": s.count,
            "p50_ms": s.p50.as_secs_f64() * 1000.0,
            "p90_ms": s.p90.as_secs_f64() * 1000.0,
            "p99_ms": s.p99.as_secs_f64() * 1000.0,
            "max_ms": s.max.as_secs_f64() * 1000.0,
        })
    })
}

pub fn json(results: &Results) -> Value {
    json!({
        "latency": results.latency.iter().map(|l| json!({
            "poll_interval_ms": l.poll_ms,
            "published": l.published,
            "missing": l.missing,
            "duplicates": l.duplicates,
            "latency": summary_json(&l.summary),
        })).collect::<Vec<_>>(),
        "burst": results.burst.as_ref().map(|b| json!({
            "bounties": b.bounties,
            "write_s": b.write.as_secs_f64(),
            "stream_delivered": b.drains.iter().map(|d| d.delivered).collect::<Vec<_>>(),
            "stream_s": b.drains.iter().map(|d| d.time.as_secs_f64()).collect::<Vec<_>>(),
            "stream_median_s": b.stream_time().as_secs_f64(),
            "stream_events_per_s": b.stream_rate(),
            "first_event_ms": b.drains.iter().map(|d| d.first_event.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
            "raw_items": b.raw_items,
            "raw_s": b.raw_times.iter().map(|t| t.as_secs_f64()).collect::<Vec<_>>(),
            "raw_items_per_s": b.raw_rate(),
            "cpu_per_stream_s": cpu_json(b.drain_cpu.seconds_per(b.drains.len())),
            "cpu_per_raw_read_s": cpu_json(b.raw_cpu.seconds_per(b.raw_times.len())),
            "ratio": b.stream_rate() / b.raw_rate(),
            "bytes_per_event": b.bytes_per_event,
            "item_bytes": b.item_bytes,
        })),
        "idle": results.idle.as_ref().map(|i| json!({
            "seconds": i.seconds,
            "instances": i.instances,
            "cpu_s": i.cpu_seconds,
            "cpu_percent": i.cpu_percent(),
            "peak_rss_kb": i.peak_rss_kb,
            "rss_kb": i.rss_kb,
            "requests": i.requests,
            "requests_per_minute": i.requests_per_minute(),
            "frames": i.heartbeats,
        })),
        "idle_shared": results.idle_shared.iter().map(|r| json!({
            "via": r.via,
            "streams": r.streams,
            "shared_read": r.shared,
            "open_s": r.open.as_secs_f64(),
            "seconds": r.seconds,
            "processes": r.processes,
            "function_cpu_percent": r.cpu_percent(),
            "cpu_percent": cpu_json(r.cpu.percent_over(r.seconds)),
            "peak_rss_kb": r.peak_rss_kb,
            "rss_kb": r.rss_kb,
            "requests": r.requests,
            "queries_per_second": r.queries_per_second(),
            "query_allowance": r.query_allowance(),
            "events": r.events,
            "ended": r.ended,
        })).collect::<Vec<_>>(),
        "fanout": results.fanout.iter().map(|f| json!({
            "via": f.via,
            "streams": f.streams,
            "bounties": f.bounties,
            "open_s": f.open.as_secs_f64(),
            "delivered": f.delivered,
            "missing": f.missing,
            "duplicates": f.duplicates,
            "unexpected": f.unexpected,
            "complete_streams": f.complete_streams,
            "latency": summary_json(&f.summary),
            "seconds": f.seconds,
            "cpu_percent": cpu_json(f.cpu.percent_over(f.seconds)),
        })).collect::<Vec<_>>(),
        "managed_cost": managed_cost(results).map(|(m, run)| json!({
            "streams": m.streams,
            "via": run.via,
            "instance": cost::INSTANCE_TYPE,
            "instance_hour": cost::INSTANCE_HOUR,
            "management_fee": cost::MANAGEMENT_FEE,
            "lease_reads_per_second": m.lease_reads_per_second(),
            "per_subscriber_hour": m.per_subscriber_hour(),
        })),
        "startup": results.startup.as_ref().map(|s| json!({
            "runs": s.runs,
            "init": summary_json(&Some(s.init)),
            "first_response": summary_json(&Some(s.first_response)),
            "binary_bytes": s.binary_bytes,
            "stripped_bytes": s.stripped_bytes,
        })),
        "prices_as_of": cost::PRICES_AS_OF,
    })
}

fn cpu_json([store, function, emulator, client]: [f64; 4]) -> Value {
    json!({ "store": store, "function": function, "emulator": emulator, "client": client })
}
