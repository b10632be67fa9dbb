//! Local operations: `firehose-admin create-table` (idempotent) and
//! `firehose-admin seed [COUNT]` (demo bounties). Reads TABLE_NAME, FEED_SHARDS and the
//! AWS SDK's variables (AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local).

use std::process::ExitCode;

use chrono::{Duration, Utc};
use firehose::bounty::{BountyDraft, Slug};
use firehose::config::Config;
use firehose::publish::{append, pick_shard};
use firehose::store::dynamo::{client_from_env, schema, DynamoFeedStore};

const USAGE: &str = "usage: firehose-admin create-table | seed [COUNT]";

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("firehose-admin: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let client = client_from_env().await;
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["create-table"] => schema::create_table(&client, &config.table_name)
            .await
            .map(|created| {
                let verb = if created {
                    "created"
                } else {
                    "already exists:"
                };
                println!("table {verb} {}", config.table_name);
            })
            .map_err(|err| err.to_string()),
        ["seed", count @ ..] if count.len() <= 1 => {
            match count.first().map_or(Ok(5), |c| c.parse::<usize>()) {
                Ok(count) if count > 0 => {
                    let store = DynamoFeedStore::new(
                        client,
                        &config.table_name,
                        config.feed_shards,
                        config.lookback,
                    );
                    seed(store, count).await
                }
                _ => Err(format!("COUNT must be a positive number\n{USAGE}")),
            }
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("firehose-admin: {message}");
            ExitCode::FAILURE
        }
    }
}

const DEMO: [(&str, &str, u64, &[&str]); 5] = [
    (
        "Fix flaky pytest fixture teardown",
        "python",
        50_000,
        &["pytest", "ci"],
    ),
    (
        "Port the CSV importer to async Rust",
        "rust",
        120_000,
        &["tokio", "csv"],
    ),
    (
        "Write a Terraform module for the staging VPC",
        "devops",
        80_000,
        &["terraform", "aws"],
    ),
    (
        "Speed up the React dashboard's first paint",
        "frontend",
        65_000,
        &["react", "performance"],
    ),
    (
        "Summarise 200 support tickets into themes",
        "data",
        30_000,
        &["llm", "analysis"],
    ),
];

async fn seed(store: DynamoFeedStore, count: usize) -> Result<(), String> {
    let now = Utc::now();
    let slug = |text: &str| Slug::parse(text).map_err(|err| err.to_string());
    let drafts = (0..count)
        .map(|n| {
            let (title, category, budget_cents, tags) = DEMO[n % DEMO.len()];
            Ok(BountyDraft {
                title: title.to_owned(),
                description: format!("Demo bounty #{} seeded by firehose-admin.", n + 1),
                category: slug(category)?,
                budget_cents,
                currency: "USD".to_owned(),
                tags: tags.iter().map(|t| slug(t)).collect::<Result<_, _>>()?,
                deadline: now + Duration::days(14 + n as i64),
            })
        })
        .collect::<Result<Vec<BountyDraft>, String>>()?;
    for chunk in drafts.chunks(firehose::publish::MAX_BATCH) {
        let shard = pick_shard(store_shards(&store));
        let bounties = append(&store, shard, chunk)
            .await
            .map_err(|err| err.to_string())?;
        for bounty in bounties {
            println!(
                "seeded {} {} ({}, {} cents)",
                bounty.id, bounty.title, bounty.category, bounty.budget_cents
            );
        }
    }
    Ok(())
}

fn store_shards(store: &DynamoFeedStore) -> usize {
    use firehose::store::FeedHeads;
    store.shard_count()
}
