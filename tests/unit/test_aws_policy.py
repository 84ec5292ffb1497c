"""The replicas' IAM policy in ``deploy/datathread.yaml`` allows every DynamoDB, S3 and SQS action
the code calls, and nothing else of those services (like the manifest-scopes test for Slack).

Calls are read from the source: the boto3 operations named in the AWS mode's modules
(``aws-setup`` is left out: it runs once with an administrator's credentials, not on replicas).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]
TEMPLATE = ROOT / "deploy" / "datathread.yaml"
MODULES = [*sorted((ROOT / "bot" / "aws").glob("*.py")), ROOT / "bot/storage/dynamodb.py",
           ROOT / "bot/datasets/s3.py", ROOT / "bot/datasets/dynamo_catalog.py"]
NOT_ON_REPLICAS = {"setup.py", "clients.py"}
#: boto3 operations whose IAM action is not simply the operation's name in CamelCase.
IAM_OF = {
    ("s3", "head_bucket"): {"s3:ListBucket"},
    ("s3", "list_objects_v2"): {"s3:ListBucket"},
    ("s3", "delete_objects"): {"s3:DeleteObject"},
    ("s3", "upload_file"): {"s3:PutObject", "s3:AbortMultipartUpload"},  # multipart for large files
    ("s3", "download_file"): {"s3:GetObject"},
    ("dynamodb", "transact_write_items"): {"dynamodb:PutItem", "dynamodb:DeleteItem"},
}
CLIENT_NAMES = {"s3": "s3", "db": "dynamodb", "dynamodb": "dynamodb", "sqs": "sqs"}


def _calls() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in MODULES:
        if path.name in NOT_ON_REPLICAS:
            continue
        text = path.read_text()
        for client, op in re.findall(r"\b(s3|db|dynamodb|sqs)\.(\w+)\(", text):
            if op not in ("get_paginator", "get_waiter", "meta"):
                found.add((CLIENT_NAMES[client], op))
        found |= {("s3", op) for op in re.findall(r'get_paginator\("(\w+)"\)', text)}
        found |= {("sqs", op) for op in re.findall(r'_sqs\(\s*"(\w+)"', text)}
        if "dynamodb" in path.name or "turn_records" in path.name or "dynamo" in path.name:
            found |= {("dynamodb", op) for op in re.findall(r'_call\(\s*"(\w+)"', text)}
    return found


def _iam(service: str, op: str) -> set[str]:
    return IAM_OF.get((service, op)) or {f"{service}:{''.join(p.title() for p in op.split('_'))}"}


def _policy_actions() -> set[str]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=Loader)  # a SafeLoader that drops !Ref/!GetAtt
    role = template["Resources"]["TaskRole"]["Properties"]
    actions: set[str] = set()
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            listed = statement["Action"]
            actions |= {listed} if isinstance(listed, str) else set(listed)
    return actions


def test_the_source_scan_finds_the_calls_of_each_service() -> None:
    calls = _calls()
    for expected in [("dynamodb", "put_item"), ("dynamodb", "query"), ("s3", "get_object"), ("s3", "upload_file"),
                     ("sqs", "send_message"), ("sqs", "change_message_visibility")]:
        assert expected in calls  # the scan itself works (else the next test would pass vacuously)


def test_every_aws_action_the_code_calls_is_in_the_replica_policy_and_no_other() -> None:
    needed = set().union(*(_iam(service, op) for service, op in _calls()))
    granted = {a for a in _policy_actions() if a.split(":")[0] in ("dynamodb", "s3", "sqs")}
    assert needed - granted == set(), "add these to TaskRole in deploy/datathread.yaml"
    assert granted - needed == set(), "the policy grants actions the code never calls"
