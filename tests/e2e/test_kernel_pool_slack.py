"""The kernel pool under concurrent Slack threads, through a real ``datathread serve`` subprocess.

Twelve threads at once, two messages each (the second reads what the first wrote), sandboxed kernels
with ``DATATHREAD_MAX_KERNELS=3`` and one warm kernel: the small version of
``python -m benchmarks.kernel_pool --threads 50``, whose driver and rules it shares. One run (about
half a minute) serves every test of the module; each asserts one rule a user or operator would notice.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from benchmarks.kernel_pool import RESPONSIVE_SECONDS, PoolRun, pool_run
from bot.agents.kernel.sandbox import bwrap_path

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bubblewrap sandboxes are Linux only"),
]

THREADS, MESSAGES, MAX_KERNELS = 12, 2, 3


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run() -> AsyncIterator[PoolRun]:
    assert bwrap_path() is not None, "bubblewrap must be installed for these tests (apt-get install -y bubblewrap)"
    yield await pool_run(THREADS, MESSAGES, MAX_KERNELS, warm_kernels=1, limit=240.0)


async def test_every_turn_completes_in_order_per_thread(run: PoolRun) -> None:
    assert run.problems == {}
    assert run.turns_done == THREADS * MESSAGES


async def test_never_more_kernel_processes_than_max_kernels(run: PoolRun) -> None:
    assert run.kernel_samples > 10, "the process table was sampled while the threads ran"
    assert 0 < run.peak_kernels <= MAX_KERNELS


async def test_healthz_and_slack_acks_stay_under_a_second(run: PoolRun) -> None:
    assert run.healthz_samples > 10 and run.healthz_failures == 0
    assert run.healthz_worst < RESPONSIVE_SECONDS
    assert run.acks == THREADS * MESSAGES and run.ack_statuses == (200,)
    assert run.ack_worst < RESPONSIVE_SECONDS


async def test_waiting_threads_are_told_how_many_are_ahead_within_a_second(run: PoolRun) -> None:
    assert run.ahead_counts and max(run.ahead_counts) >= 1
    assert run.notice_delay_worst < RESPONSIVE_SECONDS


async def test_no_kernel_process_outlives_the_server(run: PoolRun) -> None:
    assert run.kernels_left == 0
