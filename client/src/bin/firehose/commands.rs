//! `subscribe`, `backfill`, `publish`, `watch`, `update` and `close`.

use std::io::Read;
use std::pin::{pin, Pin};

use firehose_client::money::Money;
use firehose_client::{
    Bounty, Change, Client, ClientError, FeedEvent, StartAt, SubscribeOptions, WatchEvent,
};
use futures_core::Stream;
use futures_util::StreamExt;
use serde_json::Value;

use crate::args::{BackfillArgs, CloseArgs, PublishArgs, SubscribeArgs, UpdateArgs, WatchArgs};
use crate::exit::Failure;
use crate::output::{human_line, Format, Printer};

pub async fn subscribe(client: &Client, args: SubscribeArgs) -> Result<(), Failure> {
    let client = Client::builder(client_url(client))
        .heartbeat(args.heartbeat)
        .build()?;
    let format = Format::choose(args.json);
    let mut printer = Printer::new(format);
    let start = match (&args.since, args.backfill) {
        (Some(since), _) => StartAt::Since(since.clone()),
        (None, Some(max)) => StartAt::Backfill { max },
        (None, None) => StartAt::Now,
    };
    let options = SubscribeOptions {
        filter: args.filter.filter(),
        start,
    };
    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut events = feed(&client, options, args.include_changes);
    let mut received: u64 = 0;
    let mut announced = false;
    loop {
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(next) => next,
                Err(_) => {
                    let wanted = args.max_results.unwrap_or(1);
                    return if received >= wanted {
                        Ok(())
                    } else {
                        Err(Failure::timeout(format!(
                            "timed out after {} with {received} of {wanted} bounties",
                            humantime::format_duration(args.timeout.unwrap_or_default())
                        )))
                    };
                }
            },
            None => events.next().await,
        };
        let printed = match next {
            None => return Ok(()),
            Some(Err(err)) => return Err(err.into()),
            Some(Ok(FeedEvent::Connected(_))) => {
                if format == Format::Human && !announced {
                    eprintln!("connected; waiting for new bounties (Ctrl-C to stop)");
                    announced = true;
                }
                continue;
            }
            Some(Ok(FeedEvent::Reconnecting {
                failures,
                delay,
                reason,
            })) => {
                if failures > 0 {
                    eprintln!(
                        "firehose: {reason}; reconnecting in {}",
                        humantime::format_duration(round_ms(delay))
                    );
                }
                continue;
            }
            Some(Ok(FeedEvent::Bounty(bounty))) => printer.bounty(&bounty),
            Some(Ok(FeedEvent::Updated(bounty))) => printer.change(&Change::Updated(bounty)),
            Some(Ok(FeedEvent::Closed(bounty))) => printer.change(&Change::Closed(bounty)),
            // A kind of event this binary does not know yet: nothing to print.
            Some(Ok(_)) => continue,
        };
        if printed.is_err() {
            return Ok(());
        }
        received += 1;
        if args.max_results.is_some_and(|max| received >= max) {
            return Ok(());
        }
    }
}

/// The firehose with or without changes as one kind of stream. Without them the
/// request is the v1 one, which servers without the bounty lifecycle take too.
pub fn feed(
    client: &Client,
    options: SubscribeOptions,
    include_changes: bool,
) -> Pin<Box<dyn Stream<Item = Result<FeedEvent, ClientError>> + Send>> {
    if include_changes {
        Box::pin(client.subscribe_changes(options))
    } else {
        Box::pin(
            client
                .subscribe_events(options)
                .map(|item| item.map(FeedEvent::from)),
        )
    }
}

pub async fn backfill(client: &Client, args: BackfillArgs) -> Result<(), Failure> {
    let max = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let (bounties, _cursor) = client.backfill(&args.filter.filter(), max).await?;
    let format = Format::choose(args.json);
    let mut printer = Printer::new(format);
    if bounties.is_empty() && format == Format::Human {
        eprintln!("no open bounties match");
    }
    for bounty in &bounties {
        if printer.bounty(bounty).is_err() {
            break;
        }
    }
    Ok(())
}

pub async fn publish(client: &Client, args: PublishArgs) -> Result<(), Failure> {
    let api_key = api_key(args.api_key.as_deref())?;
    let body = match &args.file {
        Some(path) => read_json(path)?,
        None => {
            let mut body = serde_json::json!({
                "title": args.title,
                "category": args.category,
                "budget_cents": args.budget,
                "deadline": args.deadline,
                "tags": args.tags,
            });
            if let Some(description) = &args.description {
                body["description"] = Value::from(description.as_str());
            }
            if let Some(currency) = &args.currency {
                body["currency"] = Value::from(currency.as_str());
            }
            body
        }
    };
    let (bounty, created) = client
        .publish_json(&body, &api_key, args.idempotency_key.as_deref())
        .await?;
    match Format::choose(args.json) {
        Format::JsonLines => {
            let _ = Printer::new(Format::JsonLines).bounty(&bounty);
        }
        Format::Human => {
            let verb = if created {
                "published"
            } else {
                "already published (same idempotency key)"
            };
            println!(
                "{verb}: {} ({}, {}) id {}",
                bounty.title,
                Money(bounty.budget_cents, &bounty.currency),
                bounty.category,
                bounty.id
            );
        }
    }
    Ok(())
}

pub async fn watch(client: &Client, args: WatchArgs) -> Result<(), Failure> {
    let client = Client::builder(client_url(client))
        .heartbeat(args.heartbeat)
        .build()?;
    let format = Format::choose(args.json);
    let mut printer = Printer::new(format);
    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut events = pin!(client.watch_events(&args.id, None));
    let mut received: u64 = 0;
    let mut announced = false;
    loop {
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(next) => next,
                Err(_) => {
                    return Err(Failure::timeout(format!(
                        "timed out after {} with {received} changes; the bounty is still open",
                        humantime::format_duration(args.timeout.unwrap_or_default())
                    )))
                }
            },
            None => events.next().await,
        };
        match next {
            // After a closed or expired change, or a 204: nothing more will change.
            None => {
                if received == 0 && format == Format::Human {
                    eprintln!("the bounty is already closed or expired: nothing more will change");
                }
                return Ok(());
            }
            Some(Err(err)) => return Err(Failure::about_bounty(err)),
            Some(Ok(WatchEvent::Connected(connected))) => {
                if format == Format::Human && !announced {
                    eprintln!(
                        "watching (now v{}, {}): {}",
                        connected.bounty.version,
                        connected.bounty.status,
                        human_line(&connected.bounty)
                    );
                    announced = true;
                }
            }
            Some(Ok(WatchEvent::Reconnecting {
                failures,
                delay,
                reason,
            })) => {
                if failures > 0 {
                    eprintln!(
                        "firehose: {reason}; reconnecting in {}",
                        humantime::format_duration(round_ms(delay))
                    );
                }
            }
            Some(Ok(WatchEvent::Change(change))) => {
                if printer.change(&change).is_err() {
                    return Ok(());
                }
                received += 1;
                if args.max_changes.is_some_and(|max| received >= max) {
                    return Ok(());
                }
            }
            // A kind of event this binary does not know yet: nothing to print.
            Some(Ok(_)) => {}
        }
    }
}

pub async fn update(client: &Client, args: UpdateArgs) -> Result<(), Failure> {
    let api_key = api_key(args.keys.api_key.as_deref())?;
    let bounty = client
        .update(
            &args.id,
            &args.change.patch(),
            &api_key,
            args.keys.idempotency_key.as_deref(),
        )
        .await
        .map_err(Failure::about_bounty)?;
    print_changed(&bounty, "updated", args.keys.json);
    Ok(())
}

pub async fn close(client: &Client, args: CloseArgs) -> Result<(), Failure> {
    let api_key = api_key(args.keys.api_key.as_deref())?;
    let bounty = client
        .close(
            &args.id,
            args.reason.into(),
            &api_key,
            args.keys.idempotency_key.as_deref(),
        )
        .await
        .map_err(Failure::about_bounty)?;
    let verb = match bounty.close_reason {
        Some(reason) => format!("closed ({reason})"),
        None => "closed".to_owned(),
    };
    print_changed(&bounty, &verb, args.keys.json);
    Ok(())
}

/// The answer of `update` or `close`: the bounty as JSON, or a line saying what it is now.
fn print_changed(bounty: &Bounty, verb: &str, json: bool) {
    match Format::choose(json) {
        Format::JsonLines => {
            let _ = Printer::new(Format::JsonLines).bounty(bounty);
        }
        Format::Human => println!("{verb}, now v{}: {}", bounty.version, human_line(bounty)),
    }
}

/// The publish key from --api-key or FIREHOSE_API_KEY.
fn api_key(given: Option<&str>) -> Result<String, Failure> {
    given
        .filter(|key| !key.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Failure::usage("no publish key: set FIREHOSE_API_KEY"))
}

fn read_json(path: &std::path::Path) -> Result<Value, Failure> {
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|err| Failure::usage(format!("cannot read {}: {err}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|err| Failure::usage(format!("{} is not JSON: {err}", path.display())))
}

fn round_ms(delay: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(delay.as_millis().try_into().unwrap_or(u64::MAX))
}

fn client_url(client: &Client) -> &str {
    client.base_url()
}
