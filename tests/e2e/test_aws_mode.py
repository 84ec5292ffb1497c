"""The AWS mode (``DATATHREAD_STORE=aws``) against moto's server on loopback: set-up, doctor, the
secret rule, retention on datathread's own clock, and what a page costs on S3.

moto never expires TTL items nor applies lifecycle rules, so every time-based rule here is proved
with a clock the test moves; expiry must hold without DynamoDB's or S3's help.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.aws.clients import CallCounter
from bot.aws.settings import AwsSettings
from bot.aws.setup import ensure_resources
from bot.datasets.dynamo_catalog import DynamoCatalog
from bot.datasets.model import DatasetExpired, SortSpec
from bot.datasets.s3 import S3DatasetStore
from bot.messages import ThreadKey
from bot.storage.dynamodb import DynamoStateStore
from tests.fakes import moto_aws

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
KEY = ThreadKey("slack", "T1", "C1", "1.0")
RETENTION = timedelta(hours=6)


@dataclass
class MovableClock:
    """"Now" that a test moves forward."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


def cli(args: list[str], env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATATHREAD_", "AWS_"))}
    full = {**clean, "PYTHONPATH": str(ROOT), "DATATHREAD_HOME": str(tmp / "home"), **env}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=full, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def mode_env(settings: AwsSettings, secret: str | None = "s3cr3t") -> dict[str, str]:
    env = {**moto_aws.shared().env(), "DATATHREAD_STORE": "aws", "DATATHREAD_DYNAMODB_TABLE": settings.table,
           "DATATHREAD_S3_BUCKET": settings.bucket, "DATATHREAD_S3_PREFIX": "data",
           "DATATHREAD_QUEUE_URL": settings.queue_url}
    return {**env, "DATATHREAD_SECRET": secret} if secret else env


def test_aws_setup_creates_each_resource_once_and_says_exists_on_a_second_run(tmp_path: Path) -> None:
    settings = moto_aws.shared().fresh_settings()
    first = cli(["aws-setup"], mode_env(settings), tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert [line.split("]")[0] for line in lines] == ["[created"] * 5
    for resource in (f"table {settings.table}", f"TTL on {settings.table}.expires_at", f"bucket {settings.bucket}",
                     f"dead-letter queue {settings.dead_letter_queue_name}", f"FIFO queue {settings.queue_name}"):
        assert any(resource in line for line in lines), resource
    second = cli(["aws-setup"], mode_env(settings), tmp_path)
    assert second.returncode == 0 and all(line.startswith("[exists ]") for line in second.stdout.splitlines())


def test_doctor_checks_each_resource_and_says_to_run_aws_setup_when_missing(tmp_path: Path) -> None:
    settings = moto_aws.shared().fresh_settings()
    before = cli(["doctor"], mode_env(settings), tmp_path)
    assert before.returncode == 1
    assert f"[FAIL] DynamoDB table {settings.table}: does not exist" in before.stdout
    assert f"[FAIL] S3 bucket {settings.bucket}: does not exist" in before.stdout
    assert "datathread aws-setup" in before.stdout and "Traceback" not in before.stdout + before.stderr
    ensure_resources(moto_aws.shared().clients(), settings)
    after = cli(["doctor"], mode_env(settings), tmp_path)
    for line in (f"[ok] DynamoDB table {settings.table}", f"[ok] TTL on {settings.table}",
                 f"[ok] S3 bucket {settings.bucket}", f"[ok] SQS queue {settings.queue_name}: FIFO, dead-letter"):
        assert line in after.stdout, after.stdout


@pytest.mark.parametrize("command", [["doctor"], ["serve", "--host", "127.0.0.1", "--port", "9"]])
def test_start_up_and_doctor_refuse_the_aws_mode_without_a_shared_secret(tmp_path: Path, command: list[str]) -> None:
    settings = moto_aws.shared().fresh_settings()
    done = cli(command, mode_env(settings, secret=None), tmp_path)
    assert done.returncode == 2
    assert "DATATHREAD_STORE=aws needs DATATHREAD_SECRET, the same value on every replica" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_aws_mode_names_every_missing_variable(tmp_path: Path) -> None:
    done = cli(["doctor"], {"DATATHREAD_STORE": "aws", "DATATHREAD_SECRET": "x"}, tmp_path)
    assert done.returncode == 1
    for name in ("DATATHREAD_DYNAMODB_TABLE", "DATATHREAD_S3_BUCKET", "DATATHREAD_QUEUE_URL"):
        assert name in done.stdout


# stores on a movable clock ----------------------------------------------------------------------


@dataclass
class Replica:
    state: DynamoStateStore
    datasets: S3DatasetStore
    counter: CallCounter


@pytest.fixture
def aws(tmp_path: Path) -> AwsSettings:
    return moto_aws.settings_for(str(tmp_path))


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(datetime.now(UTC))


@pytest.fixture
async def replicas(aws: AwsSettings, clock: MovableClock, tmp_path: Path) -> AsyncIterator[list[Replica]]:
    made = []
    for i in range(2):
        counter = CallCounter()
        clients = moto_aws.shared().clients(counter)
        made.append(Replica(
            DynamoStateStore(clients.dynamodb, aws.table, tmp_path / f"ws{i}", clock),
            S3DatasetStore(clients.s3, aws.bucket, aws.prefix, DynamoCatalog(clients.dynamodb, aws.table, clock),
                           tmp_path / f"cache{i}", RETENTION, clock),
            counter))
    yield made
    for r in made:
        await r.datasets.aclose()
        await r.state.aclose()


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"R{i:06d}" for i in range(n)], "value": np.arange(n) * 0.5})


async def test_a_delivery_claim_lasts_a_day_even_though_dynamodb_has_not_deleted_it(
        replicas: list[Replica], clock: MovableClock) -> None:
    a, b = replicas
    assert await a.state.claim_event("slack:Ev1")
    clock.advance(timedelta(hours=23))
    assert not await b.state.claim_event("slack:Ev1")  # Slack's retries come within minutes: still a repeat
    clock.advance(timedelta(hours=2))
    assert await b.state.claim_event("slack:Ev1")  # the item is still in the table (moto has no TTL)


async def test_an_expired_dataset_is_refused_on_every_replica_before_any_sweep_then_swept_from_s3_and_dynamodb(
        replicas: list[Replica], clock: MovableClock, aws: AwsSettings) -> None:
    a, b = replicas
    meta = await a.datasets.register_frame(frame(100), name="sales", thread=KEY, owner="U1")
    assert (await b.datasets.page(meta.id, 1, 5)).rows[0][0] == "R000000"
    clock.advance(RETENTION)
    for replica in replicas:
        with pytest.raises(DatasetExpired, match='"sales" expired'):
            await replica.datasets.page(meta.id, 1, 5)
        assert await replica.datasets.list(KEY) == []
    s3 = moto_aws.shared().clients().s3
    assert s3.list_objects_v2(Bucket=aws.bucket, Prefix=f"{aws.prefix}datasets/{meta.id}/")["KeyCount"] > 0
    swept = [await a.datasets.sweep(), await b.datasets.sweep()]
    assert sorted(swept) == [0, 1]  # replicas sweeping at once remove it once
    assert s3.list_objects_v2(Bucket=aws.bucket, Prefix=f"{aws.prefix}datasets/{meta.id}/")["KeyCount"] == 0
    with pytest.raises(DatasetExpired, match='"sales" expired'):
        await b.datasets.get(meta.id)  # remembered as expired, not "not found"


async def test_a_page_from_another_replica_is_one_ranged_get_after_the_index_and_none_when_warm(
        replicas: list[Replica]) -> None:
    a, b = replicas
    meta = await a.datasets.register_frame(frame(50_000), name="big", thread=KEY, owner="U1")
    b.counter.calls.clear()
    first = await b.datasets.page(meta.id, 400, 20)  # rows 7,980-7,999: inside batch 0
    assert first.rows[0][0] == "R007980"
    assert b.counter.calls["s3:GetObject"] == 2  # the index once, then the batch's bytes
    b.counter.calls.clear()
    boundary = await b.datasets.page(meta.id, 410, 20)  # rows 8,180-8,199: batch 0 (cached) then 1
    assert [r[0] for r in boundary.rows] == [f"R{i:06d}" for i in range(8180, 8200)]
    assert b.counter.calls["s3:GetObject"] == 1
    b.counter.calls.clear()
    across = await b.datasets.page(meta.id, 1639, 20)  # rows 32,760-32,779: batches 3 and 4 in one GET
    assert [r[0] for r in across.rows][:2] == ["R032760", "R032761"]
    assert b.counter.calls["s3:GetObject"] == 1
    b.counter.calls.clear()
    await b.datasets.page(meta.id, 1639, 20)
    assert sum(b.counter.calls.values()) == 0  # warm: served from the replica's cache


async def test_a_sort_order_computed_on_one_replica_is_reused_by_another(replicas: list[Replica]) -> None:
    a, b = replicas
    meta = await a.datasets.register_frame(frame(30_000), name="df", thread=KEY, owner="U1")
    top = await a.datasets.page(meta.id, 1, 3, SortSpec("value", descending=True))
    assert [r[0] for r in top.rows] == ["R029999", "R029998", "R029997"]
    b.counter.calls.clear()
    again = await b.datasets.page(meta.id, 1, 3, SortSpec("value", descending=True))
    assert again.rows == top.rows
    assert b.counter.calls["s3:PutObject"] == 0  # read the stored permutation, did not sort again
