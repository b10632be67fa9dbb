//! `template.yaml` declares the same table `firehose-admin create-table` creates
//! locally, and the settings the functions read. What the SAM transform makes of it, in
//! each compute mode: tests/template_transform.rs.

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

/// The functions of the template, by logical id.
fn functions(template: &Value) -> Vec<(&str, &Value)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(name, resource)| (name.as_str().expect("logical id"), resource))
        .collect()
}

/// A function's property as SAM applies it: the function's own, else Globals.Function's.
fn property<'a>(template: &'a Value, function: &'a Value, name: &str) -> &'a Value {
    function["Properties"]
        .get(name)
        .unwrap_or(&template["Globals"]["Function"][name])
}

/// The DynamoDB actions a function's policies allow, sorted.
fn dynamodb_actions(function: &Value) -> Vec<String> {
    let text = serde_yaml::to_string(&function["Properties"]["Policies"]).expect("Policies");
    let mut actions: Vec<String> = text
        .split_whitespace()
        .filter(|w| w.contains("dynamodb:"))
        .map(|w| {
            w.trim_matches(|c| c == '\'' || c == '"' || c == '-' || c == ',')
                .to_owned()
        })
        .collect();
    actions.sort();
    actions.dedup();
    actions
}

#[test]
fn every_function_streams_with_a_timeout_above_the_cap_and_least_privilege() {
    let template = template();
    let functions = functions(&template);
    let mut names: Vec<&str> = functions.iter().map(|(name, _)| *name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "FirehoseFunction",
            "FirehoseManagedFunction",
            "PublishFunction"
        ],
        "the classic stream function, its managed-instances twin, the publish function"
    );
    let cap_max = template["Parameters"]["StreamMaxSeconds"]["MaxValue"]
        .as_u64()
        .expect("StreamMaxSeconds MaxValue");
    for (name, function) in &functions {
        let url = &function["Properties"]["FunctionUrlConfig"];
        assert_eq!(
            url["InvokeMode"].as_str(),
            Some("RESPONSE_STREAM"),
            "{name}"
        );
        assert_eq!(url["AuthType"].as_str(), Some("NONE"), "{name}");
        assert!(
            url.get("Cors").is_none(),
            "{name}: the function sends its own CORS headers; a URL Cors would double them"
        );
        let runtime = property(&template, function, "Runtime");
        assert_eq!(runtime.as_str(), Some("provided.al2023"), "{name}");
        let architecture = &property(&template, function, "Architectures")[0];
        assert_eq!(architecture.as_str(), Some("arm64"), "{name}");
        let timeout = property(&template, function, "Timeout")
            .as_u64()
            .expect("Timeout");
        assert!(
            timeout > cap_max,
            "{name}: timeout {timeout} must exceed the largest cap {cap_max}"
        );
        // SAM merges a function's own variables over those of Globals.
        let mut env = template["Globals"]["Function"]["Environment"]["Variables"]
            .as_mapping()
            .cloned()
            .expect("Globals' Environment");
        if let Some(own) = function["Properties"]["Environment"]["Variables"].as_mapping() {
            env.extend(own.clone());
        }
        for variable in [
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
            assert!(
                env.contains_key(variable),
                "{name}: the template sets {variable}"
            );
        }
        assert!(
            !env.contains_key("AWS_LAMBDA_MAX_CONCURRENCY"),
            "{name}: the platform sets AWS_LAMBDA_MAX_CONCURRENCY, from the capacity provider config"
        );
        // Exactly the DynamoDB actions the store uses.
        assert_eq!(
            dynamodb_actions(function),
            [
                "dynamodb:BatchGetItem",
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem"
            ],
            "{name}"
        );
    }
    assert_eq!(
        template["Parameters"]["PublishApiKeySha256"]["NoEcho"].as_bool(),
        Some(true)
    );
}

#[test]
fn the_functions_are_one_binary_with_one_configuration() {
    let template = template();
    for (name, function) in functions(&template) {
        for shared in ["CodeUri", "Handler", "Runtime", "Environment", "Timeout"] {
            if shared == "Environment" && name == "PublishFunction" {
                // One variable on top of the Globals: it serves no stream.
                assert_eq!(
                    function["Properties"]["Environment"]["Variables"],
                    serde_yaml::from_str::<Value>("ROUTES: publish").expect("yaml"),
                    "{name}"
                );
                continue;
            }
            assert!(
                function["Properties"].get(shared).is_none(),
                "{name} sets its own {shared}; every function takes it from Globals"
            );
        }
        assert_eq!(
            function["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{name}"
        );
        assert_eq!(
            function["Metadata"]["BuildProperties"]["Binary"].as_str(),
            Some("firehose-lambda"),
            "{name}: the binary that serves every route"
        );
    }
    assert_eq!(
        template["Globals"]["Function"]["CodeUri"].as_str(),
        Some(".")
    );
}

#[test]
fn the_memory_fits_each_compute_mode() {
    let template = template();
    let memory = |name: &str| {
        template["Resources"][name]["Properties"]["MemorySize"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} MemorySize"))
    };
    // Classic as it was; Managed Instances run nothing below 2 GiB.
    assert_eq!(memory("FirehoseFunction"), 128);
    assert!(memory("FirehoseManagedFunction") >= 2048);
    assert_eq!(memory("PublishFunction"), 128);
}

#[test]
fn publishing_has_its_own_url_and_a_reservation_parameter() {
    let template = template();
    let publish = &template["Resources"]["PublishFunction"];
    assert!(
        publish.get("Condition").is_none(),
        "the publish function exists in both compute modes"
    );
    let reserved = serde_yaml::to_string(&publish["Properties"]["ReservedConcurrentExecutions"])
        .expect("ReservedConcurrentExecutions");
    assert!(
        reserved.contains("PublishReservedConcurrency"),
        "reserved concurrency comes from its parameter: {reserved}"
    );
    let parameter = &template["Parameters"]["PublishReservedConcurrency"];
    assert_eq!(parameter["MinValue"].as_u64(), Some(0), "0: reserve none");
    assert!(parameter["Default"].as_u64().expect("Default") > 0);
    let output =
        serde_yaml::to_string(&template["Outputs"]["PublishUrl"]["Value"]).expect("PublishUrl");
    assert!(
        output.contains("PublishFunctionUrl.FunctionUrl"),
        "PublishUrl is the publish function's own URL: {output}"
    );
}
