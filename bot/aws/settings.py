"""Settings of the AWS mode, read from the environment.

Region, credentials and endpoints come from boto3's usual chain (``AWS_REGION``,
``AWS_ENDPOINT_URL_DYNAMODB`` / ``_S3`` / ``_SQS``, ...), so nothing here names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.config import ConfigError

#: The variables the AWS mode needs, with what each one is for (used in error messages).
REQUIRED = {
    "DATATHREAD_DYNAMODB_TABLE": "the DynamoDB table for conversations, deliveries and the dataset catalogue",
    "DATATHREAD_S3_BUCKET": "the S3 bucket for datasets and workspaces",
    "DATATHREAD_QUEUE_URL": "the SQS FIFO queue turns go through",
}


@dataclass(frozen=True)
class AwsSettings:
    """Where the shared state of all replicas lives."""

    table: str
    bucket: str
    queue_url: str
    prefix: str = ""  # DATATHREAD_S3_PREFIX, normalised to "" or "something/"

    @property
    def queue_name(self) -> str:
        return self.queue_url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def dead_letter_queue_name(self) -> str:
        return self.queue_name.removesuffix(".fifo") + "-dlq.fifo"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AwsSettings:
        """The settings, or ``ConfigError`` naming every missing variable (``Settings.from_env``
        already refused a missing ``DATATHREAD_SECRET``)."""
        missing = [f"{name} ({why})" for name, why in REQUIRED.items() if not env.get(name, "").strip()]
        if missing:
            raise ConfigError("DATATHREAD_STORE=aws needs " + "; ".join(missing))
        queue_url = env["DATATHREAD_QUEUE_URL"].strip()
        if not queue_url.endswith(".fifo"):
            raise ConfigError(f"DATATHREAD_QUEUE_URL must be an SQS FIFO queue (ending in .fifo), got {queue_url!r}")
        prefix = env.get("DATATHREAD_S3_PREFIX", "").strip().strip("/")
        return cls(
            table=env["DATATHREAD_DYNAMODB_TABLE"].strip(),
            bucket=env["DATATHREAD_S3_BUCKET"].strip(),
            queue_url=queue_url,
            prefix=f"{prefix}/" if prefix else "",
        )
