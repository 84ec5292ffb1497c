"""``datathread doctor`` in the AWS mode: each resource exists, is reachable and allows what we do.

Probes write and delete one small item / object of their own (never a queue message: a replica
would take it for a turn), so a missing permission shows here instead of in the middle of a turn.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from bot.aws.clients import AwsClients
from bot.aws.settings import AwsSettings
from bot.aws.setup import EXPIRY_INDEX, TTL_ATTRIBUTE
from bot.config import ConfigError
from bot.doctor import DoctorCheck

SETUP_HINT = "run `datathread aws-setup` with the same variables (or deploy deploy/datathread.yaml)"
POLICY_HINT = "give the replicas' role the actions in deploy/datathread.yaml's policy"


def problem(exc: BaseException) -> tuple[str, str]:
    """A short description of an AWS error and which hint fits it."""
    response = getattr(exc, "response", None)
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    code = str(error.get("Code") or type(exc).__name__)
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"):
        return f"not allowed ({code})", POLICY_HINT
    if code in ("ResourceNotFoundException", "NoSuchBucket", "404", "NotFound",
                "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
        return "does not exist", SETUP_HINT
    if "Credentials" in code or "Endpoint" in code:
        return f"cannot reach AWS ({code}: {exc})", "check the region, credentials and AWS_ENDPOINT_URL_* variables"
    return f"{code}: {error.get('Message') or exc}", SETUP_HINT


def _check_table(db: Any, table: str) -> list[DoctorCheck]:
    name = f"DynamoDB table {table}"
    try:
        described = db.describe_table(TableName=table)["Table"]
        indexes = {i["IndexName"] for i in described.get("GlobalSecondaryIndexes", [])}
        if EXPIRY_INDEX not in indexes:
            return [DoctorCheck(name, False, f"has no {EXPIRY_INDEX} index (the dataset sweeper needs it)",
                                "create the table with `datathread aws-setup` (or the template in deploy/)")]
        ttl = db.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        probe = {"pk": {"S": "doctor#probe"}, "sk": {"S": "probe"}}
        db.put_item(TableName=table, Item=probe)
        db.get_item(TableName=table, Key=probe, ConsistentRead=True)
        db.delete_item(TableName=table, Key=probe)
    except Exception as exc:
        detail, hint = problem(exc)
        return [DoctorCheck(name, False, detail, hint)]
    checks = [DoctorCheck(name, True, f"{described.get('TableStatus', 'ACTIVE').lower()}, read and write work")]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or ttl.get("AttributeName") != TTL_ATTRIBUTE:
        checks.append(DoctorCheck(f"TTL on {table}", False, "TTL is off: old items would never be reclaimed",
                                  f"turn on TTL on attribute {TTL_ATTRIBUTE} (`datathread aws-setup` does)"))
    else:
        checks.append(DoctorCheck(f"TTL on {table}", True, f"on attribute {TTL_ATTRIBUTE}"))
    return checks


def _check_bucket(s3: Any, bucket: str, prefix: str) -> DoctorCheck:
    name = f"S3 bucket {bucket}"
    key = f"{prefix}doctor-probe"
    try:
        s3.head_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=b"ok")
        s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-0")["Body"].read()
        s3.delete_object(Bucket=bucket, Key=key)
    except Exception as exc:
        detail, hint = problem(exc)
        return DoctorCheck(name, False, detail, hint)
    return DoctorCheck(name, True, f"read, ranged read, write and delete work under {prefix or '/'}")


def _check_queue(sqs: Any, url: str) -> DoctorCheck:
    name = f"SQS queue {url.rsplit('/', 1)[-1]}"
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    except Exception as exc:
        detail, hint = problem(exc)
        return DoctorCheck(name, False, detail, hint)
    if attributes.get("FifoQueue") != "true":
        return DoctorCheck(name, False, "is not a FIFO queue", "DATATHREAD_QUEUE_URL must name a .fifo queue")
    redrive = json.loads(attributes.get("RedrivePolicy") or "{}")
    if not redrive.get("deadLetterTargetArn"):
        return DoctorCheck(name, False, "has no dead-letter queue: a turn that keeps failing would loop",
                           SETUP_HINT)
    return DoctorCheck(name, True, f"FIFO, dead-letter queue after {redrive.get('maxReceiveCount')} receives")


def diagnose_sync(env: Mapping[str, str], clients: AwsClients | None = None) -> list[DoctorCheck]:
    try:
        settings = AwsSettings.from_env(env)
    except ConfigError as exc:
        return [DoctorCheck("AWS settings", False, str(exc), "set the variables named above")]
    try:
        clients = clients or AwsClients.create()
    except Exception as exc:
        detail, hint = problem(exc)
        return [DoctorCheck("AWS clients", False, detail, hint)]
    checks = [DoctorCheck("AWS settings", True, "DATATHREAD_SECRET is set; table, bucket and queue are named")]
    checks += _check_table(clients.dynamodb, settings.table)
    checks.append(_check_bucket(clients.s3, settings.bucket, settings.prefix))
    checks.append(_check_queue(clients.sqs, settings.queue_url))
    return checks


async def diagnose(env: Mapping[str, str], clients: AwsClients | None = None) -> list[DoctorCheck]:
    """One check per resource, in the order to fix them."""
    return await asyncio.to_thread(diagnose_sync, env, clients)
