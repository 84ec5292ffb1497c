"""The AWS mode's stores, built from the environment (called only by ``bot.composition``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.aws.clients import AwsClients
from bot.aws.settings import AwsSettings
from bot.config import Settings, env_number
from bot.datasets.dynamo_catalog import DynamoCatalog
from bot.datasets.s3 import S3DatasetStore
from bot.storage.dynamodb import Clock, DynamoStateStore, utc_now

if TYPE_CHECKING:
    from bot.aws.turn_queue import SqsTurnQueue
    from bot.aws.workspace_mirror import S3WorkspaceMirror
    from bot.engine import Engine


@dataclass(frozen=True)
class AwsStores:
    state: DynamoStateStore
    datasets: S3DatasetStore
    clients: AwsClients
    settings: AwsSettings
    clock: Clock
    env: Mapping[str, str]

    def workspace_mirror(self) -> S3WorkspaceMirror:
        """Workspaces mirrored under the bucket's ``workspaces/`` prefix."""
        from bot.aws.workspace_mirror import S3WorkspaceMirror

        return S3WorkspaceMirror(self.clients.s3, self.settings.bucket, self.settings.prefix)

    def intake(self, engine: Engine) -> SqsTurnQueue:
        """The SQS turn queue whose workers run turns on ``engine``."""
        from bot.aws.turn_queue import SqsTurnQueue
        from bot.aws.turn_records import TurnRecords

        visibility = int(env_number(self.env, "DATATHREAD_QUEUE_VISIBILITY_SECONDS", 30))
        # A running turn's replica counts as dead after two leases without a heartbeat: one lapsed
        # lease may be a stall (it renews every third of one).
        records = TurnRecords(self.clients.dynamodb, self.settings.table, SqsTurnQueue.replica_id(), self.clock,
                              dead_after=timedelta(seconds=2 * visibility))
        return SqsTurnQueue(self.clients.sqs, self.settings.queue_url, records, engine, visibility=visibility)


def build_aws_stores(settings: Settings, env: Mapping[str, str], clients: AwsClients | None = None,
                     clock: Clock = utc_now) -> AwsStores:
    """State in DynamoDB and datasets in S3 (a local cache under ``settings.home``);
    ``ConfigError`` names a missing variable."""
    aws = AwsSettings.from_env(env)
    clients = clients or AwsClients.create(env)
    state = DynamoStateStore(clients.dynamodb, aws.table, settings.workspaces, clock)
    catalog = DynamoCatalog(clients.dynamodb, aws.table, clock)
    datasets = S3DatasetStore(clients.s3, aws.bucket, aws.prefix, catalog, settings.home / "s3-cache",
                              settings.retention, clock)
    return AwsStores(state, datasets, clients, aws, clock, env)
