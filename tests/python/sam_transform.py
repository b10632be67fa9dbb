"""The stack template.yaml makes with given parameters, as CloudFormation deploys it.

Usage: sam_transform.py TEMPLATE PARAMETERS_JSON

Runs the SAM transform (AWS::Serverless-2016-10-31) on TEMPLATE, then does what
CloudFormation does next with the parameter values: evaluates the Conditions, drops the
resources and outputs whose condition is false, resolves Fn::If (AWS::NoValue removes
the property) and Refs to parameters. Prints {"transformed": the template as the
transform left it, "deployed": the result}, as JSON, for the Rust test that runs it.
Offline: the region and account are fixed fakes and no managed policy is looked up (the
template names none).
"""

import json
import os
import sys

# Before samtranslator is imported: it asks boto3 for the region (the partition of
# ARNs) and must never reach for credentials.
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "fake")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "fake")

from samtranslator.parser.parser import Parser  # noqa: E402
from samtranslator.translator.translator import Translator  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


NO_VALUE = object()


def parameter_values(template, given):
    """Every parameter's value: the given one, else its default, typed as CloudFormation
    hands it to intrinsic functions (a CommaDelimitedList is a list)."""
    values = {}
    for name, spec in template.get("Parameters", {}).items():
        value = given.get(name, spec.get("Default"))
        if spec["Type"] == "CommaDelimitedList" and isinstance(value, str):
            value = value.split(",")
        values[name] = value
    return values


def evaluate(node, params, conditions):
    """Resolves the intrinsic functions that depend on parameters and conditions only;
    any other (GetAtt, Sub, Ref to a resource) is kept as it is."""
    if isinstance(node, list):
        items = (evaluate(item, params, conditions) for item in node)
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, arg), = node.items()
        if key == "Ref" and arg == "AWS::NoValue":
            return NO_VALUE
        if key == "Ref" and arg in params:
            return params[arg]
        if key == "Condition":
            return conditions[arg]
        if key == "Fn::If":
            name, then, otherwise = arg
            return evaluate(then if conditions[name] else otherwise, params, conditions)
        args = evaluate(arg, params, conditions)
        if key == "Fn::Equals":
            return str(args[0]) == str(args[1])
        if key == "Fn::Not":
            return not args[0]
        if key == "Fn::And":
            return all(args)
        if key == "Fn::Or":
            return any(args)
        if key == "Fn::Join" and all(isinstance(part, str) for part in args[1]):
            return args[0].join(args[1])
    out = {}
    for key, value in node.items():
        value = evaluate(value, params, conditions)
        if value is not NO_VALUE:
            out[key] = value
    return out


def deployed(template, given):
    params = parameter_values(template, given)
    conditions = {}
    # A condition may name another: evaluate until every one is known.
    pending = dict(template.get("Conditions", {}))
    while pending:
        for name, expression in list(pending.items()):
            try:
                conditions[name] = evaluate(expression, params, conditions)
                del pending[name]
            except KeyError:
                continue
    keep = lambda item: conditions.get(item.get("Condition"), True)  # noqa: E731
    return {
        "Resources": {
            name: evaluate(resource, params, conditions)
            for name, resource in template["Resources"].items()
            if keep(resource)
        },
        "Outputs": {
            name: evaluate(output, params, conditions)
            for name, output in template.get("Outputs", {}).items()
            if keep(output)
        },
    }


def main() -> None:
    path, parameters = sys.argv[1], json.loads(sys.argv[2])
    with open(path, encoding="utf-8") as file:
        template = yaml_parse(file.read())
    # `sam deploy` uploads the code and puts its S3 address in CodeUri; the transform
    # accepts nothing else, so stand in for that upload.
    globals_function = template.get("Globals", {}).get("Function", {})
    if isinstance(globals_function.get("CodeUri"), str):
        globals_function["CodeUri"] = "s3://firehose-artifacts/code.zip"
    values = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", **parameters}
    out = Translator({}, Parser()).translate(template, parameter_values=values)
    result = {"transformed": out, "deployed": deployed(out, parameters)}
    json.dump(result, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
