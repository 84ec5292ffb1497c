"""boto3 clients for the AWS mode, made once per process and shared (boto3 clients are thread-safe).

Every call the code makes goes through these clients, so ``CallCounter`` sees them all: the
benchmark counts DynamoDB/S3/SQS calls per turn and per click with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CallCounter:
    """Counts API calls by ``service:Operation`` (e.g. ``s3:GetObject``)."""

    calls: Counter[str] = field(default_factory=Counter)

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.endpoint_prefix}:{model.name}"] += 1

    def by_service(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for name, n in self.calls.items():
            out[name.split(":", 1)[0]] += n
        return dict(out)


@dataclass(frozen=True)
class AwsClients:
    """The three clients the AWS mode uses."""

    dynamodb: Any
    s3: Any
    sqs: Any

    @classmethod
    def create(cls, env: Mapping[str, str] | None = None, counter: CallCounter | None = None) -> AwsClients:
        """Clients as boto3's default chain makes them (region, credentials, ``AWS_ENDPOINT_URL_*``),
        reading those variables from ``env`` when given (``os.environ`` otherwise)."""
        import boto3
        from botocore.config import Config

        config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)
        if env is None:
            session = boto3.session.Session()
            made = cls(*(session.client(name, config=config) for name in ("dynamodb", "s3", "sqs")))
        else:
            session = boto3.session.Session(
                aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
                aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
                aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
                region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            )
            made = cls(*(session.client(
                name, config=config,
                endpoint_url=env.get(f"AWS_ENDPOINT_URL_{name.upper()}") or env.get("AWS_ENDPOINT_URL") or None,
            ) for name in ("dynamodb", "s3", "sqs")))
        if counter is not None:
            for client in (made.dynamodb, made.s3, made.sqs):
                client.meta.events.register("before-call.*.*", counter)
        return made
