//! What CloudFormation deploys from `template.yaml` in each compute mode: the SAM
//! transform (aws-sam-translator, the code CloudFormation runs for
//! AWS::Serverless-2016-10-31), then the template's conditions evaluated with the
//! parameters given, by tests/python/sam_transform.py. scripts/test installs the
//! translator into .local/sam-venv (scripts/lib/install.sh, ensure_sam_translator).

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

/// FIREHOSE_SAM_PYTHON, or the venv scripts/test installs the translator into.
fn sam_python() -> PathBuf {
    let python = std::env::var_os("FIREHOSE_SAM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".local/sam-venv/bin/python")
        });
    assert!(
        python.exists(),
        "{} is missing: the SAM transform test needs aws-sam-translator; install it with \
         `bash -c 'source scripts/lib.sh; ensure_sam_translator'` (scripts/test does), or \
         point FIREHOSE_SAM_PYTHON at a Python that has it",
        python.display()
    );
    python
}

/// The resources and outputs CloudFormation would create with these parameters.
fn deploy(parameters: Value) -> Value {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new(sam_python())
        .arg(format!("{root}/tests/python/sam_transform.py"))
        .arg(format!("{root}/template.yaml"))
        .arg(parameters.to_string())
        .output()
        .expect("run tests/python/sam_transform.py");
    assert!(
        output.status.success(),
        "the SAM transform failed with {parameters}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("JSON from the transform");
    result["deployed"].clone()
}

fn managed_parameters() -> Value {
    json!({
        "ComputeMode": "managed-instances",
        "SubnetIds": ["subnet-0aaa", "subnet-0bbb", "subnet-0ccc"],
        "SecurityGroupIds": ["sg-0123"],
        "VpcId": "vpc-0456",
        "RouteTableIds": ["rtb-0789", "rtb-0abc"],
        "PerExecutionEnvironmentMaxConcurrency": "300",
    })
}

/// The logical ids of the resources of one type, sorted.
fn of_type<'a>(stack: &'a Value, kind: &str) -> Vec<&'a str> {
    let mut names: Vec<&str> = stack["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"] == kind)
        .map(|(name, _)| name.as_str())
        .collect();
    names.sort();
    names
}

/// A number CloudFormation may hold as a string (a Ref to a Number parameter).
fn number(value: &Value) -> u64 {
    match value {
        Value::Number(n) => n.as_u64().expect("a whole number"),
        Value::String(s) => s.parse().expect("a whole number"),
        other => panic!("not a number: {other}"),
    }
}

/// The function's Function URL: streamed, public, without a CORS layer of its own.
fn assert_streaming_url(stack: &Value, function: &str) {
    let url = &stack["Resources"][format!("{function}Url")];
    assert_eq!(
        url["Type"], "AWS::Lambda::Url",
        "{function} has a Function URL"
    );
    let properties = &url["Properties"];
    assert_eq!(properties["TargetFunctionArn"], json!({"Ref": function}));
    assert_eq!(properties["InvokeMode"], "RESPONSE_STREAM", "{function}");
    assert_eq!(properties["AuthType"], "NONE", "{function}");
    assert!(
        properties.get("Cors").is_none(),
        "{function}: the function sends its own CORS headers; a URL Cors would double them"
    );
}

fn output_url(stack: &Value, output: &str) -> String {
    stack["Outputs"][output]["Value"].to_string()
}

#[test]
fn classic_mode_is_the_one_classic_function_and_no_network() {
    let stack = deploy(json!({}));
    assert_eq!(
        of_type(&stack, "AWS::Lambda::Function"),
        ["FirehoseFunction", "PublishFunction"]
    );
    assert!(of_type(&stack, "AWS::Lambda::CapacityProvider").is_empty());
    assert!(of_type(&stack, "AWS::EC2::VPCEndpoint").is_empty());
    let function = &stack["Resources"]["FirehoseFunction"]["Properties"];
    assert!(function.get("CapacityProviderConfig").is_none());
    assert!(function.get("VpcConfig").is_none());
    assert_eq!(number(&function["MemorySize"]), 128);
    assert_streaming_url(&stack, "FirehoseFunction");
    assert!(output_url(&stack, "FunctionUrl").contains("FirehoseFunctionUrl"));
    assert!(output_url(&stack, "StreamUrl").contains("FirehoseFunctionUrl"));
    assert_eq!(
        stack["Outputs"]["FunctionName"]["Value"],
        json!({"Ref": "FirehoseFunction"})
    );
}

#[test]
fn managed_mode_runs_the_stream_function_on_an_arm64_capacity_provider() {
    let stack = deploy(managed_parameters());
    assert_eq!(
        of_type(&stack, "AWS::Lambda::Function"),
        ["FirehoseManagedFunction", "PublishFunction"]
    );
    assert_eq!(
        of_type(&stack, "AWS::Lambda::CapacityProvider"),
        ["FirehoseCapacityProvider"]
    );
    let provider = &stack["Resources"]["FirehoseCapacityProvider"]["Properties"];
    assert_eq!(
        provider["InstanceRequirements"]["Architectures"],
        json!(["arm64"])
    );
    assert_eq!(
        provider["VpcConfig"],
        json!({
            "SubnetIds": ["subnet-0aaa", "subnet-0bbb", "subnet-0ccc"],
            "SecurityGroupIds": ["sg-0123"],
        })
    );
    assert_eq!(
        number(&provider["CapacityProviderScalingConfig"]["MaxVCpuCount"]),
        16,
        "the default ceiling on vCPUs"
    );
    // The operator role SAM makes, with the policy that lets Lambda run the instances.
    let role = &provider["PermissionsConfig"]["CapacityProviderOperatorRoleArn"]["Fn::GetAtt"][0];
    let role = &stack["Resources"][role.as_str().expect("operator role")];
    assert!(role["Properties"]["ManagedPolicyArns"]
        .to_string()
        .contains("AWSLambdaManagedEC2ResourceOperator"));

    let function = &stack["Resources"]["FirehoseManagedFunction"]["Properties"];
    let config =
        &function["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"];
    assert_eq!(
        config["CapacityProviderArn"],
        json!({"Fn::GetAtt": ["FirehoseCapacityProvider", "Arn"]})
    );
    assert_eq!(
        number(&config["PerExecutionEnvironmentMaxConcurrency"]),
        300
    );
    assert!(
        number(&function["MemorySize"]) >= 2048,
        "Managed Instances run nothing below 2 GiB"
    );
    assert_eq!(function["Architectures"], json!(["arm64"]));
    assert!(
        function.get("VpcConfig").is_none(),
        "the capacity provider's VPC is the function's"
    );
    assert!(
        function["Environment"]["Variables"]
            .get("AWS_LAMBDA_MAX_CONCURRENCY")
            .is_none(),
        "the platform sets AWS_LAMBDA_MAX_CONCURRENCY itself"
    );
    assert_eq!(
        function["PublishToLatestPublished"], true,
        "each deploy republishes what the unqualified URL invokes"
    );
    assert_streaming_url(&stack, "FirehoseManagedFunction");
    assert!(output_url(&stack, "FunctionUrl").contains("FirehoseManagedFunctionUrl"));
    assert!(output_url(&stack, "StreamUrl").contains("FirehoseManagedFunctionUrl"));

    // The instances reach DynamoDB through a gateway endpoint on the given route tables.
    assert_eq!(
        of_type(&stack, "AWS::EC2::VPCEndpoint"),
        ["DynamoDbGatewayEndpoint"]
    );
    let endpoint = &stack["Resources"]["DynamoDbGatewayEndpoint"]["Properties"];
    assert_eq!(endpoint["VpcEndpointType"], "Gateway");
    assert_eq!(
        endpoint["ServiceName"],
        json!({"Fn::Sub": "com.amazonaws.${AWS::Region}.dynamodb"})
    );
    assert_eq!(endpoint["VpcId"], "vpc-0456");
    assert_eq!(endpoint["RouteTableIds"], json!(["rtb-0789", "rtb-0abc"]));
}

#[test]
fn managed_mode_without_route_tables_leaves_dynamodb_routing_to_the_vpc() {
    let mut parameters = managed_parameters();
    let parameters_map = parameters.as_object_mut().expect("parameters");
    parameters_map.remove("RouteTableIds");
    parameters_map.remove("VpcId");
    parameters_map.remove("PerExecutionEnvironmentMaxConcurrency");
    let stack = deploy(parameters);
    assert!(of_type(&stack, "AWS::EC2::VPCEndpoint").is_empty());
    let config = &stack["Resources"]["FirehoseManagedFunction"]["Properties"]
        ["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"];
    assert_eq!(
        number(&config["PerExecutionEnvironmentMaxConcurrency"]),
        256,
        "the default per-environment concurrency"
    );
}

#[test]
fn publishing_is_its_own_classic_function_with_reserved_concurrency_in_both_modes() {
    for (mode, parameters) in [
        ("classic", json!({})),
        ("managed-instances", managed_parameters()),
    ] {
        let stack = deploy(parameters);
        let stream_function = if mode == "classic" {
            "FirehoseFunction"
        } else {
            "FirehoseManagedFunction"
        };
        let publish = &stack["Resources"]["PublishFunction"]["Properties"];
        let stream = &stack["Resources"][stream_function]["Properties"];
        assert!(
            publish.get("CapacityProviderConfig").is_none(),
            "{mode}: publishes are short requests, served by classic Lambda"
        );
        assert_eq!(
            number(&publish["ReservedConcurrentExecutions"]),
            5,
            "{mode}: the default reservation"
        );
        // The stream function's settings, and one more: it serves no stream.
        let mut environment = stream["Environment"].clone();
        environment["Variables"]["ROUTES"] = serde_json::json!("publish");
        assert_eq!(publish["Environment"], environment, "{mode}");
        for same in ["Code", "Handler", "Runtime", "Architectures", "Timeout"] {
            assert_eq!(
                publish[same], stream[same],
                "{mode}: {same} as the stream function's"
            );
        }
        let policies = |function: &str| {
            let role = &stack["Resources"][format!("{function}Role")]["Properties"];
            let mut policies = role["Policies"].clone();
            for policy in policies.as_array_mut().expect("Policies") {
                policy.as_object_mut().expect("policy").remove("PolicyName");
            }
            policies
        };
        assert_eq!(
            policies("PublishFunction"),
            policies(stream_function),
            "{mode}"
        );
        assert_streaming_url(&stack, "PublishFunction");
        assert_eq!(
            stack["Outputs"]["PublishUrl"]["Value"],
            json!({"Fn::GetAtt": ["PublishFunctionUrl", "FunctionUrl"]}),
            "{mode}"
        );
    }

    let unreserved = deploy(json!({"PublishReservedConcurrency": "0"}));
    assert!(
        unreserved["Resources"]["PublishFunction"]["Properties"]
            .get("ReservedConcurrentExecutions")
            .is_none(),
        "0 reserves nothing (a reservation of 0 would throttle every publish)"
    );
    let twenty = deploy(json!({"PublishReservedConcurrency": "20"}));
    assert_eq!(
        number(
            &twenty["Resources"]["PublishFunction"]["Properties"]["ReservedConcurrentExecutions"]
        ),
        20
    );
}
