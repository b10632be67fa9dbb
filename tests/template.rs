//! `template.yaml` declares the same table `firehose-admin create-table` creates
//! locally, and the settings the function reads.

use firehose::store::dynamo::schema;
use serde_yaml::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

/// (`first`, `second`) of each mapping in a YAML list, e.g. a KeySchema.
fn name_pairs(list: &Value, first: &str, second: &str) -> Vec<(String, String)> {
    let text = |item: &Value, field: &str| item[field].as_str().unwrap_or_default().to_owned();
    list.as_sequence()
        .map(|items| {
            items
                .iter()
                .map(|item| (text(item, first), text(item, second)))
                .collect()
        })
        .unwrap_or_default()
}

fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<&'a Value> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .values()
        .filter(|resource| resource["Type"].as_str() == Some(kind))
        .collect()
}

#[test]
fn the_table_matches_the_schema_the_code_creates() {
    let template = template();
    let tables = resources_of_type(&template, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table");
    let table = &tables[0]["Properties"];
    let keys = name_pairs(&table["KeySchema"], "AttributeName", "KeyType");
    assert_eq!(
        keys,
        [
            (schema::PARTITION_KEY.to_owned(), "HASH".to_owned()),
            (schema::SORT_KEY.to_owned(), "RANGE".to_owned())
        ]
    );
    let mut attributes = name_pairs(
        &table["AttributeDefinitions"],
        "AttributeName",
        "AttributeType",
    );
    attributes.sort();
    assert_eq!(
        attributes,
        [
            (schema::PARTITION_KEY.to_owned(), "S".to_owned()),
            (schema::SORT_KEY.to_owned(), "S".to_owned())
        ]
    );
    assert_eq!(table["BillingMode"].as_str(), Some(schema::BILLING_MODE));
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(schema::TTL_ATTRIBUTE)
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
    assert!(
        table.get("GlobalSecondaryIndexes").is_none()
            && table.get("LocalSecondaryIndexes").is_none(),
        "no index: reads are consistent Queries on the base table"
    );
}

#[test]
fn the_function_streams_with_a_timeout_above_the_cap_and_least_privilege() {
    let template = template();
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 1);
    let function = &functions[0]["Properties"];
    assert_eq!(
        function["FunctionUrlConfig"]["InvokeMode"].as_str(),
        Some("RESPONSE_STREAM")
    );
    assert_eq!(
        function["FunctionUrlConfig"]["AuthType"].as_str(),
        Some("NONE")
    );
    assert_eq!(function["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(function["Architectures"][0].as_str(), Some("arm64"));
    assert_eq!(function["MemorySize"].as_u64(), Some(128));
    let timeout = function["Timeout"].as_u64().expect("Timeout");
    let cap_max = template["Parameters"]["StreamMaxSeconds"]["MaxValue"]
        .as_u64()
        .expect("StreamMaxSeconds MaxValue");
    assert!(
        timeout > cap_max,
        "timeout {timeout} must exceed the largest cap {cap_max}"
    );

    let env = function["Environment"]["Variables"]
        .as_mapping()
        .expect("Environment");
    for name in [
        "TABLE_NAME",
        "POLL_INTERVAL_MS",
        "HEARTBEAT_SECONDS",
        "STREAM_MAX_SECONDS",
        "LOOKBACK_SECONDS",
        "FEED_SHARDS",
        "MAX_STREAMS_PER_CLIENT",
        "STREAM_LEASE_GRACE_SECONDS",
        "PUBLISH_API_KEY_SHA256",
    ] {
        assert!(env.contains_key(name), "the template sets {name}");
    }
    assert_eq!(
        template["Parameters"]["PublishApiKeySha256"]["NoEcho"].as_bool(),
        Some(true)
    );

    // Exactly the DynamoDB actions the store uses.
    let text = serde_yaml::to_string(&function["Policies"]).expect("Policies");
    let mut actions: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.contains("dynamodb:"))
        .map(|w| w.trim_matches(|c| c == '\'' || c == '"' || c == '-' || c == ','))
        .collect();
    actions.sort();
    actions.dedup();
    assert_eq!(
        actions,
        [
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem"
        ]
    );
}
