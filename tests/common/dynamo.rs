//! The tests' DynamoDB: an SDK client for DynamoDB Local and fresh tables with the
//! function's own schema. (DynamoDB Local itself is started by firehose-testkit.)

use std::time::Duration;

use firehose::store::dynamo::schema;

/// A DynamoDB client for `endpoint` with local credentials.
pub async fn client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{Builder, Credentials, Region};
    let config = Builder::new()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "firehose-tests",
        ))
        .endpoint_url(endpoint)
        .timeout_config(
            aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(10))
                .build(),
        )
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Creates a fresh table with a unique name on `endpoint`.
pub async fn fresh_table(endpoint: &str, label: &str) -> String {
    let table = format!("t-{label}-{}", ulid::Ulid::new().to_string().to_lowercase());
    schema::create_table(&client(endpoint).await, &table)
        .await
        .expect("create table");
    table
}
