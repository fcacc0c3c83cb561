"""deploy/aws: the SAM template lints clean, grants least privilege and encrypts everything.

The checks walk the whole template (every ``Statement`` anywhere, every
resource of a type), and again the template SAM expands it into, so a
resource added later, or a policy SAM generates, cannot slip past them.
Offline: cfn-lint and SAM's translator need no network and no Docker.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "aws"
TEMPLATE = DEPLOY / "template.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
HANDLER = "facelens.aws.handler.handler"
FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}

# The settings the handler reads (facelens.config.Settings), with the value
# each must have where it is a constant.
HANDLER_ENVIRONMENT: dict[str, str | None] = {
    "FACELENS_HOME": "/tmp/facelens",
    "FACELENS_OBJECTS_URL": "s3://",
    "FACELENS_BUCKET": None,
    "FACELENS_COLLECTIONS_URL": "rekognition://",
    "FACELENS_PROFILES_URL": None,
    "FACELENS_MQTT__URL": None,
    "FACELENS_RECOGNIZER__COLLECTION_ID": None,
    "FACELENS_RECOGNIZER__TOPIC": "rekognition",
    "FACELENS_RECOGNIZER__FACE_MATCH_THRESHOLD": None,
}

# Broad AWS managed policies: none of them is ever needed here.
BROAD_MANAGED_POLICY = re.compile(r"FullAccess|AdministratorAccess|PowerUserAccess")
# What SAM attaches to a function without a Role of its own: logs only.
BASIC_EXECUTION_ROLE = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


# ------------------------------------------------------------------ loading ---
def _load() -> dict[str, Any]:
    """The template as plain JSON values, intrinsic tags in their long form (!Sub → Fn::Sub)."""
    from cfnlint.decode import decode  # type: ignore[import-untyped]

    template, problems = decode(str(TEMPLATE))
    assert not problems, [str(p) for p in problems]
    assert template is not None
    plain: dict[str, Any] = json.loads(json.dumps(template))
    return plain


def _expand(template: dict[str, Any]) -> dict[str, Any]:
    """The template after SAM's transform: the roles, permissions and bucket notification
    SAM writes for the function, which the source template does not show."""
    # Neither package ships type information.
    from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]
    from samtranslator.translator.translator import Translator  # type: ignore[import-untyped]

    sam_template = copy.deepcopy(template)
    for resource in sam_template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            # `sam build` fills ImageUri in; the translator only needs some value.
            resource["Properties"].setdefault(
                "ImageUri", "123456789012.dkr.ecr.us-east-1.amazonaws.com/facelens:v1"
            )
    translator = Translator(managed_policy_map={}, sam_parser=Parser())
    expanded: dict[str, Any] = translator.translate(sam_template=sam_template, parameter_values={})
    plain: dict[str, Any] = json.loads(json.dumps(expanded))
    return plain


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return _load()


@pytest.fixture(scope="module")
def expanded(template: dict[str, Any]) -> dict[str, Any]:
    # The translator reads the region from the environment (ARN partitions).
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return _expand(template)


@pytest.fixture(params=["source", "expanded"])
def any_template(
    request: pytest.FixtureRequest, template: dict[str, Any], expanded: dict[str, Any]
) -> dict[str, Any]:
    """Both forms, for the checks that must hold for what SAM generates too."""
    return template if request.param == "source" else expanded


# ------------------------------------------------------------------ walking ---
def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every value in the template with its path, depth first."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


def _statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every policy statement anywhere: inline, managed, bucket, topic, queue, trust, SAM."""
    found: list[tuple[str, dict[str, Any]]] = []
    for path, node in _walk(template):
        if isinstance(node, dict) and "Statement" in node:
            statements = node["Statement"]
            for index, statement in enumerate(
                statements if isinstance(statements, list) else [statements]
            ):
                assert isinstance(statement, dict), f"{path}: a statement must be a mapping"
                found.append((f"{path}/Statement/{index}", statement))
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _strings(node: Any) -> Iterator[str]:
    for _, value in _walk(node):
        if isinstance(value, str):
            yield value


def _resources(template: dict[str, Any], *types: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] in types
    }


def _function(template: dict[str, Any]) -> dict[str, Any]:
    functions = _resources(template, "AWS::Serverless::Function")
    assert len(functions) == 1, sorted(functions)
    return next(iter(functions.values()))


def _bucket_name(template: dict[str, Any]) -> Any:
    buckets = _resources(template, "AWS::S3::Bucket")
    assert len(buckets) == 1, sorted(buckets)
    return next(iter(buckets.values()))["Properties"]["BucketName"]


# ----------------------------------------------------------------- cfn-lint ---
def test_cfn_lint_finds_no_error_or_warning() -> None:
    from cfnlint.api import lint_file  # type: ignore[import-untyped]

    findings = [
        f"{match.rule.id} {match.message} (line {match.linenumber})"
        for match in lint_file(TEMPLATE)
        if match.rule.severity.lower() in {"error", "warning"}
    ]
    assert findings == []


def test_sam_expands_the_template(expanded: dict[str, Any]) -> None:
    """The transform itself succeeds (cfn-lint would report it too), with what SAM adds."""
    assert "Transform" not in expanded
    types = {resource["Type"] for resource in expanded["Resources"].values()}
    assert {"AWS::Lambda::Function", "AWS::IAM::Role", "AWS::Lambda::Permission"} <= types


# ------------------------------------------------------------ least privilege ---
def test_every_statement_is_found(template: dict[str, Any]) -> None:
    """The walker sees the statements it guards (a broken walker would pass everything)."""
    sids = {statement.get("Sid") for _, statement in _statements(template)}
    assert {"DenyInsecureTransport", "ReadFaceCrops", "UploadFaceCrops"} <= sids
    assert len(_statements(template)) >= 10


def test_no_allow_statement_has_a_wildcard_action(any_template: dict[str, Any]) -> None:
    offending = [
        f"{path}: {statement.get('Action')}"
        for path, statement in _statements(any_template)
        if statement.get("Effect") == "Allow"
        and any("*" in action for action in _as_list(statement.get("Action", [])))
    ]
    assert offending == []


def test_only_deny_statements_may_use_wildcards(any_template: dict[str, Any]) -> None:
    """A wildcard is fine where it narrows: the bucket's deny of plain HTTP uses s3:*, which
    is what Security Hub's S3.5 control looks for. NotAction would grant by omission."""
    for path, statement in _statements(any_template):
        assert statement.get("Effect") in {"Allow", "Deny"}, path
        assert "NotAction" not in statement, path
        assert "NotPrincipal" not in statement, path
        if statement["Effect"] == "Deny":
            continue
        for resource in _as_list(statement.get("Resource", [])):
            assert resource != "*", f"{path}: Allow on every resource"


def test_no_allow_to_everyone(any_template: dict[str, Any]) -> None:
    for path, statement in _statements(any_template):
        if statement.get("Effect") != "Allow" or "Principal" not in statement:
            continue
        principal = statement["Principal"]
        principals = (
            [p for value in principal.values() for p in _as_list(value)]
            if isinstance(principal, dict)
            else _as_list(principal)
        )
        assert "*" not in principals, f"{path}: Allow to everyone"


def test_no_broad_managed_policy(any_template: dict[str, Any]) -> None:
    broad = [text for text in _strings(any_template) if BROAD_MANAGED_POLICY.search(text)]
    assert broad == []


def test_the_function_role_has_logs_and_nothing_broad(expanded: dict[str, Any]) -> None:
    roles = {
        name: role
        for name, role in _resources(expanded, "AWS::IAM::Role").items()
        if name.startswith("RecognizerFunction")
    }
    assert len(roles) == 1, sorted(roles)
    role = next(iter(roles.values()))["Properties"]
    assert role["ManagedPolicyArns"] == [BASIC_EXECUTION_ROLE]


def _allowed(template: dict[str, Any], statement_path_prefix: str) -> dict[str, list[Any]]:
    """Action → resources of the Allow statements under one path."""
    grants: dict[str, list[Any]] = {}
    for path, statement in _statements(template):
        if path.startswith(statement_path_prefix) and statement.get("Effect") == "Allow":
            for action in _as_list(statement["Action"]):
                grants.setdefault(action, []).extend(_as_list(statement.get("Resource", [])))
    return grants


def test_the_function_may_do_only_its_job(template: dict[str, Any]) -> None:
    grants = _allowed(template, "/Resources/RecognizerFunction/Properties/Policies")
    assert sorted(grants) == [
        "dynamodb:GetItem",
        "iot:Publish",
        "rekognition:SearchFacesByImage",
        "s3:GetObject",
        "sqs:SendMessage",
    ]
    # Crops of the one bucket: its name, then the faces/ prefix.
    (crops,) = grants["s3:GetObject"]
    name_template, name_values = _bucket_name(template)["Fn::Sub"]
    assert crops["Fn::Sub"][1] == name_values
    assert crops["Fn::Sub"][0] == f"arn:${{AWS::Partition}}:s3:::{name_template}/faces/*"
    # The one collection, the one table, the one queue.
    collection = "arn:${AWS::Partition}:rekognition:${AWS::Region}:${AWS::AccountId}:collection/"
    assert grants["rekognition:SearchFacesByImage"] == [
        {"Fn::Sub": collection + "${FaceCollection}"}
    ]
    assert grants["dynamodb:GetItem"] == [{"Fn::GetAtt": ["ProfileTable", "Arn"]}]
    assert grants["sqs:SendMessage"] == [{"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}]
    # Three named topics, no wildcard.
    topic = "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:topic/"
    assert grants["iot:Publish"] == [
        {"Fn::Sub": topic + name}
        for name in ("rekognition", "rekognition/unknown", "rekognition/errors")
    ]


def test_the_camera_may_only_upload_crops(template: dict[str, Any]) -> None:
    policy = template["Resources"]["CameraPolicy"]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    grants = _allowed(template, "/Resources/CameraPolicy")
    assert grants == {
        "s3:PutObject": [{"Fn::Sub": "arn:${AWS::Partition}:s3:::${CropsBucket}/faces/*"}]
    }
    role = template["Resources"]["CameraRole"]["Properties"]
    assert role["ManagedPolicyArns"] == [{"Ref": "CameraPolicy"}]
    assert "Policies" not in role


def test_the_iot_rule_forwards_to_sns_with_publish_only(template: dict[str, Any]) -> None:
    (rule,) = _resources(template, "AWS::IoT::TopicRule").values()
    payload = rule["Properties"]["TopicRulePayload"]
    assert payload["Sql"] == "SELECT * FROM 'rekognition'"
    (action,) = payload["Actions"]
    assert action["Sns"]["TargetArn"] == {"Ref": "IdentificationsTopic"}
    role_name = action["Sns"]["RoleArn"]["Fn::GetAtt"][0]
    assert _allowed(template, f"/Resources/{role_name}/Properties/Policies") == {
        "sns:Publish": [{"Ref": "IdentificationsTopic"}]
    }
    assert "ManagedPolicyArns" not in template["Resources"][role_name]["Properties"]


# ----------------------------------------------------------------- the bucket ---
def test_buckets_are_private_and_encrypted(any_template: dict[str, Any]) -> None:
    buckets = _resources(any_template, "AWS::S3::Bucket")
    assert buckets
    for name, bucket in buckets.items():
        properties = bucket["Properties"]
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name
        assert properties.get("AccessControl", "Private") == "Private", name
        assert properties["OwnershipControls"]["Rules"] == [
            {"ObjectOwnership": "BucketOwnerEnforced"}
        ], name
        rules = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rules, name
        for rule in rules:
            algorithm = rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
            assert algorithm in {"AES256", "aws:kms", "aws:kms:dsse"}, name


def test_buckets_refuse_plain_http(template: dict[str, Any]) -> None:
    buckets = set(_resources(template, "AWS::S3::Bucket"))
    guarded = set()
    for policy in _resources(template, "AWS::S3::BucketPolicy").values():
        properties = policy["Properties"]
        for statement in _as_list(properties["PolicyDocument"]["Statement"]):
            if (
                statement["Effect"] == "Deny"
                and statement["Principal"] == "*"
                and statement["Action"] == "s3:*"
                and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            ):
                (bucket,) = properties["Bucket"].values()
                resources = json.dumps(statement["Resource"])
                assert f'["{bucket}", "Arn"]' in resources, "the bucket itself"
                assert f"${{{bucket}.Arn}}/*" in resources, "its objects"
                guarded.add(bucket)
    assert guarded == buckets


def test_crops_expire(template: dict[str, Any]) -> None:
    (bucket,) = _resources(template, "AWS::S3::Bucket").values()
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = [
        rule
        for rule in rules
        if rule["Status"] == "Enabled"
        and rule.get("Prefix", rule.get("Filter", {}).get("Prefix")) == "faces/"
    ]
    assert len(expiring) == 1
    days = expiring[0]["ExpirationInDays"]
    assert days == {"Ref": "CropRetentionDays"}
    assert template["Parameters"]["CropRetentionDays"]["Type"] == "Number"


def test_crops_created_under_faces_trigger_the_function(
    template: dict[str, Any], expanded: dict[str, Any]
) -> None:
    rules = [
        {"Name": "prefix", "Value": "faces/"},
        {"Name": "suffix", "Value": ".jpg"},
    ]
    events = _function(template)["Properties"]["Events"]
    s3_events = [event for event in events.values() if event["Type"] == "S3"]
    assert s3_events, "the function has an S3 event"
    for event in s3_events:
        properties = event["Properties"]
        assert properties["Bucket"] == {"Ref": "CropsBucket"}
        assert properties["Events"] == "s3:ObjectCreated:*"
        assert properties["Filter"]["S3Key"]["Rules"] == rules
    # What S3 is told: every notification of every bucket carries the filter.
    for bucket in _resources(expanded, "AWS::S3::Bucket").values():
        notifications = bucket["Properties"]["NotificationConfiguration"]
        configurations = [c for group in notifications.values() for c in group]
        assert configurations
        for configuration in configurations:
            assert configuration["Event"] == "s3:ObjectCreated:*"
            assert configuration["Filter"]["S3Key"]["Rules"] == rules


# -------------------------------------------------------------- encryption ---
def test_tables_are_encrypted_and_recoverable(any_template: dict[str, Any]) -> None:
    tables = _resources(any_template, "AWS::DynamoDB::Table")
    assert tables
    for name, table in tables.items():
        properties = table["Properties"]
        assert properties["SSESpecification"]["SSEEnabled"] is True, name
        assert properties["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True
        }, name


def test_profile_table_is_keyed_by_face_id(template: dict[str, Any]) -> None:
    (table,) = _resources(template, "AWS::DynamoDB::Table").values()
    properties = table["Properties"]
    assert properties["KeySchema"] == [{"AttributeName": "FaceId", "KeyType": "HASH"}]
    assert properties["AttributeDefinitions"] == [{"AttributeName": "FaceId", "AttributeType": "S"}]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"


def test_topics_are_encrypted(any_template: dict[str, Any]) -> None:
    topics = _resources(any_template, "AWS::SNS::Topic")
    assert topics
    for name, topic in topics.items():
        assert topic["Properties"]["KmsMasterKeyId"] == "alias/aws/sns", name


def test_queues_are_encrypted(any_template: dict[str, Any]) -> None:
    queues = _resources(any_template, "AWS::SQS::Queue")
    assert queues
    for name, queue in queues.items():
        properties = queue["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True or properties.get("KmsMasterKeyId"), (
            name
        )


# ------------------------------------------------------------- the function ---
def test_the_function_runs_the_handler_from_an_image(template: dict[str, Any]) -> None:
    function = _function(template)
    properties = function["Properties"]
    assert properties["PackageType"] == "Image"
    assert properties["ImageConfig"]["Command"] == [HANDLER]
    assert "Handler" not in properties
    metadata = function["Metadata"]
    context = (TEMPLATE.parent / metadata["DockerContext"]).resolve()
    assert (context / "pyproject.toml").is_file(), "the context is the repository"
    assert (context / metadata["Dockerfile"]).resolve() == DOCKERFILE
    assert metadata["DockerTag"]
    assert properties["MemorySize"] >= 1024
    assert properties["Timeout"] == 30
    assert properties["ReservedConcurrentExecutions"] == {"Ref": "ReservedConcurrency"}


def test_failed_events_reach_the_dead_letter_queue(
    template: dict[str, Any], expanded: dict[str, Any]
) -> None:
    properties = _function(template)["Properties"]
    assert properties["DeadLetterQueue"] == {
        "Type": "SQS",
        "TargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
    }
    assert template["Resources"]["DeadLetterQueue"]["Type"] == "AWS::SQS::Queue"
    (function,) = _resources(expanded, "AWS::Lambda::Function").values()
    assert function["Properties"]["DeadLetterConfig"] == {
        "TargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    }


def test_the_function_environment_names_the_handler_settings(template: dict[str, Any]) -> None:
    variables = _function(template)["Properties"]["Environment"]["Variables"]
    assert set(HANDLER_ENVIRONMENT) <= set(variables)
    for name, value in HANDLER_ENVIRONMENT.items():
        if value is not None:
            assert variables[name] == value, name
    # The bucket the function reads is the one the cameras write to.
    assert variables["FACELENS_BUCKET"] == _bucket_name(template)
    assert variables["FACELENS_PROFILES_URL"] == {"Fn::Sub": "dynamodb://${ProfileTable}"}
    assert variables["FACELENS_MQTT__URL"] == {"Fn::Sub": "iotdata://${IotDataEndpoint}"}
    assert variables["FACELENS_RECOGNIZER__COLLECTION_ID"] == {"Ref": "FaceCollection"}
    assert variables["FACELENS_RECOGNIZER__FACE_MATCH_THRESHOLD"] == {"Ref": "FaceMatchThreshold"}


def test_the_iot_endpoint_parameter_is_constrained(template: dict[str, Any]) -> None:
    pattern = re.compile(template["Parameters"]["IotDataEndpoint"]["AllowedPattern"])
    assert pattern.fullmatch("a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com")
    assert pattern.fullmatch("a1b2c3d4e5f6g7-ats.iot.cn-north-1.amazonaws.com.cn")
    assert not pattern.fullmatch("https://a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com")
    assert not pattern.fullmatch("a1b2c3d4e5f6g7.iot.eu-west-1.amazonaws.com")  # not ATS
    assert not pattern.fullmatch("")


def test_outputs_name_what_the_readme_uses(template: dict[str, Any]) -> None:
    assert {
        "CropsBucketName",
        "ProfileTableName",
        "CollectionId",
        "IdentificationsTopicArn",
        "RecognizerFunctionArn",
        "CameraPolicyArn",
        "CameraRoleArn",
        "DeadLetterQueueUrl",
    } <= set(template["Outputs"])


# --------------------------------------------------------------- Dockerfile ---
def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, arguments = stripped.partition(" ")
            instructions.append((instruction.upper(), arguments.strip()))
    return instructions


def test_the_image_runs_the_handler() -> None:
    commands = [
        arguments for instruction, arguments in _dockerfile_instructions() if instruction == "CMD"
    ]
    assert commands, "the Dockerfile has a CMD"
    # Only the last CMD counts; the exec (JSON) form, as Lambda's runtime interface client expects.
    assert json.loads(commands[-1]) == [HANDLER]


def test_the_image_is_lambdas_python_with_facelens_installed() -> None:
    instructions = _dockerfile_instructions()
    (base,) = [arguments for instruction, arguments in instructions if instruction == "FROM"]
    assert base.startswith("public.ecr.aws/lambda/python:")
    runs = " ".join(arguments for instruction, arguments in instructions if instruction == "RUN")
    assert "pip install" in runs
    copies = [arguments for instruction, arguments in instructions if instruction == "COPY"]
    assert any("pyproject.toml" in c for c in copies)
    assert any(c.split()[0] == "src" for c in copies)
