//! The table definition, in one place: `firehose-admin create-table` creates it
//! locally, and a test checks that `template.yaml` declares the same table.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

/// Partition key attribute (S).
pub const PARTITION_KEY: &str = "pk";
/// Sort key attribute (S).
pub const SORT_KEY: &str = "sk";
/// The TTL attribute (N, epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// `PAY_PER_REQUEST`: the table scales with use, and an idle feed costs only storage.
pub const BILLING_MODE: &str = "PAY_PER_REQUEST";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(String);

fn err(context: &str, error: impl std::fmt::Display) -> SchemaError {
    SchemaError(format!("{context}: {error}"))
}

/// Creates the table with its TTL unless it exists. Returns whether it created it.
pub async fn create_table(client: &Client, table: &str) -> Result<bool, SchemaError> {
    let exists = client.describe_table().table_name(table).send().await;
    if exists.is_ok() {
        return Ok(false);
    }
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(|e| err("key schema", e))
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| err("attribute definition", e))
    };
    client
        .create_table()
        .table_name(table)
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .attribute_definitions(attribute(PARTITION_KEY)?)
        .attribute_definitions(attribute(SORT_KEY)?)
        .billing_mode(BillingMode::from(BILLING_MODE))
        .send()
        .await
        .map_err(|e| {
            err(
                "CreateTable",
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )
        })?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(|e| err("TTL specification", e))?,
        )
        .send()
        .await
        .map_err(|e| {
            err(
                "UpdateTimeToLive",
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )
        })?;
    Ok(true)
}
