"""``datathread aws-setup``: create the table, bucket and queues the AWS mode needs, idempotently.

Each step says whether it made the resource or found it already there, so running it twice is
safe and the second run reports "exists" for everything.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from bot.aws.clients import AwsClients
from bot.aws.settings import AwsSettings

#: DynamoDB's TTL attribute on every item that ends (see ``bot.storage.dynamodb``).
TTL_ATTRIBUTE = "expires_at"
#: Global secondary index listing datasets by expiry, for the sweeper.
EXPIRY_INDEX = "by-expiry"
#: Receives after which SQS moves a turn to the dead-letter queue.
MAX_RECEIVES = 3


@dataclass(frozen=True)
class SetupStep:
    """One resource: what it is, and whether this run created it."""

    resource: str
    created: bool
    detail: str = ""

    def line(self) -> str:
        state = "created" if self.created else "exists "
        return f"[{state}] {self.resource}" + (f": {self.detail}" if self.detail else "")


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _table(db: Any, name: str) -> list[SetupStep]:
    steps = []
    try:
        db.describe_table(TableName=name)
        steps.append(SetupStep(f"DynamoDB table {name}", False))
    except Exception as exc:
        if _error_code(exc) != "ResourceNotFoundException":
            raise
        db.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "gsi_pk", "gsi_sk")
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{
                "IndexName": EXPIRY_INDEX,
                "KeySchema": [{"AttributeName": "gsi_pk", "KeyType": "HASH"},
                              {"AttributeName": "gsi_sk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }],
        )
        db.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        steps.append(SetupStep(f"DynamoDB table {name}", True, "on-demand, keys pk/sk, index by-expiry"))
    ttl = db.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        steps.append(SetupStep(f"TTL on {name}.{TTL_ATTRIBUTE}", False))
    else:
        db.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
        steps.append(SetupStep(f"TTL on {name}.{TTL_ATTRIBUTE}", True))
    return steps


def _bucket(s3: Any, name: str, retention_days: int) -> list[SetupStep]:
    try:
        s3.head_bucket(Bucket=name)
        made = False
    except Exception as exc:
        if _error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        region = s3.meta.region_name
        extra = {} if region in (None, "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=name, **extra)
        made = True
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    # Only a backstop: datathread deletes expired data itself, to the minute; this catches leftovers.
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [{
        "ID": "datathread-backstop", "Status": "Enabled", "Filter": {"Prefix": ""},
        "Expiration": {"Days": retention_days},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    }]})
    return [SetupStep(f"S3 bucket {name}", made, f"private, lifecycle backstop {retention_days} days")]


def _queues(sqs: Any, settings: AwsSettings) -> list[SetupStep]:
    steps = []
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    dlq_name = settings.dead_letter_queue_name
    dlq_url, made = _queue(sqs, dlq_name, {**fifo, "MessageRetentionPeriod": str(14 * 86400)})
    steps.append(SetupStep(f"SQS dead-letter queue {dlq_name}", made, dlq_url))
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)})
    attributes = {**fifo, "VisibilityTimeout": "60", "RedrivePolicy": redrive}
    url, made = _queue(sqs, settings.queue_name, attributes)
    if not made:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": redrive})
    steps.append(SetupStep(f"SQS FIFO queue {settings.queue_name}", made, f"{url} (3 receives, then the DLQ)"))
    return steps


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, bool]:
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"]), False
    except Exception as exc:
        if "NonExistentQueue" not in _error_code(exc):
            raise
    return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]), True


def ensure_resources(clients: AwsClients, settings: AwsSettings, retention_days: int = 2) -> list[SetupStep]:
    """Create whatever is missing (blocking: it waits for the table); return one step per resource."""
    return [
        *_table(clients.dynamodb, settings.table),
        *_bucket(clients.s3, settings.bucket, retention_days),
        *_queues(clients.sqs, settings),
    ]


async def aws_setup(clients: AwsClients, settings: AwsSettings, retention_days: int = 2) -> list[SetupStep]:
    return await asyncio.to_thread(ensure_resources, clients, settings, retention_days)
