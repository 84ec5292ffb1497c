"""moto's server mode on a free loopback port: real boto3 against local DynamoDB, S3 and SQS.

``MotoAws.env()`` is the environment a ``datathread`` subprocess needs to use it; ``clients()``
are boto3 clients for in-process tests. moto never expires TTL items nor applies lifecycle rules:
tests of time-based rules move datathread's own clock instead.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from adapters.local_server import free_port
from bot.aws.clients import AwsClients, CallCounter
from bot.aws.settings import AwsSettings

REGION = "us-east-1"




@dataclass
class MotoAws:
    url: str
    server: Any

    @classmethod
    def start(cls) -> MotoAws:
        from moto.server import ThreadedMotoServer

        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        return cls(f"http://127.0.0.1:{port}", server)

    def stop(self) -> None:
        self.server.stop()

    def env(self) -> dict[str, str]:
        """boto3's usual variables pointed at this server (fake credentials)."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_DYNAMODB": self.url,
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_ENDPOINT_URL_SQS": self.url,
        }

    def mode_env(self, aws: AwsSettings, visibility: int | None = 4) -> dict[str, str]:
        """``env()`` plus what runs datathread's AWS mode on ``aws``'s resources: the shared secret
        every replica needs, and a turn lease of ``visibility`` seconds (short, so a dead replica's turn
        comes back within a test; ``None``: the default lease)."""
        env = {**self.env(), "DATATHREAD_STORE": "aws", "DATATHREAD_SECRET": "shared-secret-0123456789abcdef",
               "DATATHREAD_DYNAMODB_TABLE": aws.table, "DATATHREAD_S3_BUCKET": aws.bucket,
               "DATATHREAD_QUEUE_URL": aws.queue_url}
        if visibility is not None:
            env["DATATHREAD_QUEUE_VISIBILITY_SECONDS"] = str(visibility)
        return env

    def clients(self, counter: CallCounter | None = None) -> AwsClients:
        import boto3

        kwargs = {"endpoint_url": self.url, "region_name": REGION,
                  "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        made = AwsClients(*(boto3.client(name, **kwargs) for name in ("dynamodb", "s3", "sqs")))
        if counter is not None:
            for client in (made.dynamodb, made.s3, made.sqs):
                client.meta.events.register("before-call.*.*", counter)
        return made

    def fresh_settings(self) -> AwsSettings:
        """Names no other test uses (one moto server is shared by the session)."""
        tag = secrets.token_hex(4)
        return AwsSettings(
            table=f"dt-{tag}", bucket=f"dt-{tag}",
            queue_url=f"{self.url}/123456789012/dt-{tag}.fifo", prefix="data/",
        )


_shared: MotoAws | None = None


def shared() -> MotoAws:
    """One moto server for the whole test process (started on first use, stopped at exit)."""
    global _shared
    if _shared is None:
        import atexit
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        _shared = MotoAws.start()
        atexit.register(_shared.stop)
    return _shared


def settings_for(tag: str) -> AwsSettings:
    """Resources named after ``tag`` (e.g. a test's temporary folder), created if missing."""
    import hashlib

    from bot.aws.setup import ensure_resources

    moto = shared()
    name = "dt-" + hashlib.sha256(tag.encode()).hexdigest()[:12]
    settings = AwsSettings(table=name, bucket=name, queue_url=f"{moto.url}/123456789012/{name}.fifo", prefix="data/")
    if name not in _made:
        ensure_resources(moto.clients(), settings)
        _made.add(name)
    return settings


_made: set[str] = set()
