"""Every ``StateStore`` (``bot/storage/base.py``) keeps its contract.

Conversations: starting one is idempotent and race-safe and keeps the first owner; a reset gives
new ids and a new workspace; ``touch`` records activity. Deliveries are claimed once. Values round
trip as JSON. Remembered records are read back until their TTL passes (on the store's clock), never
after. Everything survives a restart. Parametrized over ``STORES``: a second implementation
(DynamoDB) adds one entry and inherits every check.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.feedback import FeedbackRecord
from bot.journal import TurnInFlight
from bot.messages import ThreadKey
from bot.storage.base import StateStore
from bot.storage.dynamodb import DynamoStateStore
from bot.storage.local import SqliteStateStore
from bot.workflows.record import RunRecord, RunStatus, StepRecord
from tests.fakes import moto_aws

KEY = ThreadKey("slack", "T0001", "C0CHAN", "1700000000.000100")
OTHER = ThreadKey("slack", "T0001", "C0CHAN", "1700000001.000100")

class MovableClock:
    """The store's clock: tests of expiry move it (moto never expires TTL items, and no test waits)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


#: name -> a store kept under a test's temporary folder (the same folder twice: the same store after
#: a restart), telling time by ``clock`` when given.
STORES: dict[str, Callable[..., StateStore]] = {
    "sqlite": lambda tmp, clock=None: SqliteStateStore(
        tmp / "state.sqlite3", tmp / "workspaces", **({"clock": clock} if clock else {})),
    "dynamodb": lambda tmp, clock=None: DynamoStateStore(
        moto_aws.shared().clients().dynamodb, moto_aws.settings_for(str(tmp)).table, tmp / "workspaces",
        **({"clock": clock} if clock else {})),
}
#: Stores that start a server (moto): in the e2e lane.
E2E_STORES = {"dynamodb"}


@pytest.fixture(params=[pytest.param(name, marks=[pytest.mark.e2e] if name in E2E_STORES else [])
                        for name in sorted(STORES)])
def make_store(request: pytest.FixtureRequest) -> Callable[[Path], StateStore]:
    return STORES[request.param]


@pytest.fixture
async def state(make_store: Callable[[Path], StateStore], tmp_path: Path) -> AsyncIterator[StateStore]:
    store = make_store(tmp_path)
    yield store
    await store.aclose()


async def test_a_thread_has_no_conversation_until_one_is_started(state: StateStore) -> None:
    assert await state.conversation(KEY) is None
    started = await state.start_conversation(KEY, "UALICE")
    assert await state.conversation(KEY) == started
    assert (started.key, started.owner) == (KEY, "UALICE")
    assert await state.conversation(OTHER) is None


async def test_starting_again_returns_the_same_conversation_and_keeps_the_first_owner(state: StateStore) -> None:
    first = await state.start_conversation(KEY, "UALICE")
    again = await state.start_conversation(KEY, "UBOB")
    assert again == first and again.owner == "UALICE"


async def test_concurrent_starts_agree_on_one_conversation(state: StateStore) -> None:
    started = await asyncio.gather(*(state.start_conversation(KEY, f"U{i}") for i in range(10)))
    assert len({c.id for c in started}) == 1 and len({c.owner for c in started}) == 1
    assert await state.conversation(KEY) == started[0]


async def test_threads_get_distinct_conversations_and_workspaces_without_raw_platform_ids(state: StateStore) -> None:
    a = await state.start_conversation(KEY, "UALICE")
    b = await state.start_conversation(OTHER, "UALICE")
    assert a.id != b.id and a.session_id != b.session_id and a.workspace != b.workspace
    for text in (a.id, a.session_id, str(a.workspace)):
        assert KEY.channel not in text and KEY.thread not in text  # ids end up in paths and AWS session ids


async def test_a_reset_starts_a_fresh_conversation_for_the_new_owner(state: StateStore) -> None:
    old = await state.start_conversation(KEY, "UALICE")
    fresh = await state.reset_conversation(KEY, "UBOB")
    assert fresh.id != old.id and fresh.session_id != old.session_id and fresh.workspace != old.workspace
    assert fresh.owner == "UBOB" and fresh.key == KEY
    assert await state.conversation(KEY) == fresh
    assert await state.start_conversation(KEY, "UCAROL") == fresh  # the reset one is now the thread's
    assert (await state.reset_conversation(KEY, "UBOB")).id not in (old.id, fresh.id)


async def test_resetting_a_thread_without_a_conversation_starts_one(state: StateStore) -> None:
    fresh = await state.reset_conversation(KEY, "UALICE")
    assert await state.conversation(KEY) == fresh and fresh.owner == "UALICE"


async def test_touch_records_activity_and_keeps_the_rest(state: StateStore) -> None:
    started = await state.start_conversation(KEY, "UALICE")
    await state.touch(started)
    touched = await state.conversation(KEY)
    assert touched is not None
    assert touched.last_active >= started.last_active and touched.created == started.created
    assert (touched.id, touched.owner, touched.workspace) == (started.id, started.owner, started.workspace)


async def test_a_delivery_is_claimed_once(state: StateStore) -> None:
    assert await state.claim_event("slack:C0CHAN:1700000000.000100")
    assert not await state.claim_event("slack:C0CHAN:1700000000.000100")
    assert await state.claim_event("teams:1700000000.000100")  # ids are namespaced by the caller
    claims = await asyncio.gather(*(state.claim_event("race") for _ in range(10)))
    assert sorted(claims) == [False] * 9 + [True]


async def test_values_round_trip_as_json_per_namespace(state: StateStore) -> None:
    assert await state.get_value("history", "c1") is None
    value = [{"role": "user", "content": [{"text": "hi é 😀"}]}, 3, 1.5, None, True]
    await state.put_value("history", "c1", value)
    assert await state.get_value("history", "c1") == value
    assert await state.get_value("refs", "c1") is None
    await state.put_value("history", "c1", {"replaced": True})
    assert await state.get_value("history", "c1") == {"replaced": True}


async def test_everything_survives_a_restart(make_store: Callable[[Path], StateStore], tmp_path: Path) -> None:
    store = make_store(tmp_path)
    started = await store.start_conversation(KEY, "UALICE")
    assert await store.claim_event("Ev1")
    await store.put_value("refs", "c1", {"service_url": "https://smba.example/"})
    await store.aclose()
    again = make_store(tmp_path)
    try:
        assert await again.conversation(KEY) == started
        assert not await again.claim_event("Ev1")  # a retry after a restart is still a repeat
        assert await again.get_value("refs", "c1") == {"service_url": "https://smba.example/"}
    finally:
        await again.aclose()


def _run(run_id: str, workflow: str, minute: int, status: RunStatus = "succeeded") -> RunRecord:
    started = datetime(2026, 12, 1, 9, minute, tzinfo=UTC)
    return RunRecord(
        id=run_id, workflow=workflow, owner="UALICE", status=status, started=started,
        finished=started + timedelta(seconds=42), params={"region": "EMEA"},
        steps=(StepRecord("extract", "succeeded", started, started + timedelta(seconds=5), {"sales": "ds1"}),
               StepRecord("summarise", "failed", started, None, {}, "NameError: x"),
               StepRecord("chart", "reused", None, None, {"c": "ds2"}, None, "run0")),
        error="summarise: NameError: x",
    )


async def test_a_workflow_run_record_round_trips_with_steps_outputs_and_errors(state: StateStore) -> None:
    assert await state.workflow_run("run1") is None
    record = _run("run1", "weekly-sales", 1, "failed")
    await state.save_run(record)
    assert await state.workflow_run("run1") == record
    finished = record.with_step(StepRecord("summarise", "succeeded", record.started, record.started, {"s": "ds3"}))
    await state.save_run(finished)  # saving again replaces the record
    assert await state.workflow_run("run1") == finished


async def test_recent_workflow_runs_come_newest_first_and_filter_by_workflow(state: StateStore) -> None:
    for i, name in enumerate(["weekly-sales", "daily", "weekly-sales", "daily"]):
        await state.save_run(_run(f"run{i}", name, i))
    assert [r.id for r in await state.workflow_runs()] == ["run3", "run2", "run1", "run0"]
    assert [r.id for r in await state.workflow_runs(limit=2)] == ["run3", "run2"]
    assert [r.id for r in await state.workflow_runs(workflow="weekly-sales")] == ["run2", "run0"]


async def test_workflow_runs_survive_a_restart(make_store: Callable[[Path], StateStore], tmp_path: Path) -> None:
    store = make_store(tmp_path)
    await store.save_run(_run("run1", "weekly-sales", 1))
    await store.aclose()
    again = make_store(tmp_path)
    try:
        assert await again.workflow_run("run1") == _run("run1", "weekly-sales", 1)
    finally:
        await again.aclose()


async def test_a_second_verdict_by_the_same_user_on_the_same_turn_replaces_the_first(state: StateStore) -> None:
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    await state.record_feedback(FeedbackRecord("c1", "t1", "UALICE", at, True, "", "slack"))
    later = at + timedelta(seconds=5)
    await state.record_feedback(FeedbackRecord("c1", "t1", "UALICE", later, False, "wrong", "slack"))
    await state.record_feedback(FeedbackRecord("c1", "t1", "UBOB", at, True))
    await state.record_feedback(FeedbackRecord("c1", "t2", "UALICE", at, True))
    kept = await state.feedback()
    assert len(kept) == 3
    alice_t1 = next(r for r in kept if (r.user, r.turn) == ("UALICE", "t1"))
    assert (alice_t1.positive, alice_t1.comment, alice_t1.at) == (False, "wrong", at + timedelta(seconds=5))


async def test_feedback_since_leaves_out_older_verdicts_and_survives_a_restart(
        make_store: Callable[[Path], StateStore], tmp_path: Path) -> None:
    old, new = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    store = make_store(tmp_path)
    await store.record_feedback(FeedbackRecord("c1", "t1", "UALICE", old, True))
    await store.record_feedback(FeedbackRecord("c1", "t2", "UALICE", new, False, "too slow"))
    await store.aclose()
    again = make_store(tmp_path)
    try:
        assert [r.turn for r in await again.feedback(since=new - timedelta(days=7))] == ["t2"]
        assert [r.turn for r in await again.feedback()] == ["t1", "t2"]
    finally:
        await again.aclose()


async def test_a_released_claim_is_claimed_again_by_the_next_delivery(state: StateStore) -> None:
    assert await state.claim_event("slack:EvCrash")
    await state.release_event("slack:EvCrash")
    assert await state.claim_event("slack:EvCrash")
    assert not await state.claim_event("slack:EvCrash")


async def test_turns_in_flight_survive_a_restart_until_they_end(make_store: Callable[[Path], StateStore],
                                                                 tmp_path: Path) -> None:
    teams = ThreadKey("teams", "tenant", "19:abc@thread.tacv2;messageid=1", "1")
    first = TurnInFlight(KEY, "UALICE", 100.0, "slack:Ev1", ("1700000000.000200",), {"message_ts": KEY.thread})
    store = make_store(tmp_path)
    await store.journal_turn(first)
    await store.journal_turn(TurnInFlight(OTHER, "UBOB", 101.0))
    await store.journal_turn(TurnInFlight(teams, "29:x", 99.0, None, ("a1",), {"reference": {"id": "a", "n": [1]}}))
    moved = TurnInFlight(KEY, "UALICE", 100.0, "slack:Ev1", ("1700000000.000200", "1700000000.000300"),
                         {"message_ts": KEY.thread})
    await store.journal_turn(moved)  # one per thread: the newest record wins
    await store.aclose()
    again = make_store(tmp_path)
    try:
        assert await again.turns_in_flight("slack") == [moved, TurnInFlight(OTHER, "UBOB", 101.0)]
        (recorded,) = await again.turns_in_flight("teams")
        assert recorded.address == {"reference": {"id": "a", "n": [1]}} and recorded.messages == ("a1",)
        await again.end_turn(KEY)
        await again.end_turn(KEY)  # ending twice is harmless
        assert await again.turns_in_flight("slack") == [TurnInFlight(OTHER, "UBOB", 101.0)]
    finally:
        await again.aclose()


async def test_concurrent_verdicts_by_one_user_on_one_turn_keep_exactly_one(state: StateStore) -> None:
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    verdicts = [FeedbackRecord("c1", "t1", "UALICE", at + timedelta(seconds=i), i % 2 == 0, f"v{i}", "slack")
                for i in range(6)]
    await asyncio.gather(*(state.record_feedback(v) for v in verdicts))  # replicas racing on one click
    (kept,) = await state.feedback()
    assert kept in verdicts
    assert await state.feedback(since=kept.at + timedelta(microseconds=1)) == []  # no stale entry listed later


async def test_a_verdict_changed_to_a_later_time_is_listed_only_at_its_new_time(state: StateStore) -> None:
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    await state.record_feedback(FeedbackRecord("c1", "t1", "UALICE", early, True))
    await state.record_feedback(FeedbackRecord("c1", "t1", "UALICE", late, False, "changed my mind"))
    assert [(r.at, r.positive) for r in await state.feedback()] == [(late, False)]
    assert [r.comment for r in await state.feedback(since=late)] == ["changed my mind"]


async def test_a_run_with_long_errors_round_trips(state: StateStore) -> None:
    trace = "".join(f'  File "step.py", line {i}, in f\n    x = y[{i}]\nKeyError: {i}\n' for i in range(20_000))
    record = _run("big", "weekly-sales", 5, "failed")
    big = record.with_step(StepRecord("summarise", "failed", record.started, None, {}, trace))
    await state.save_run(big)  # about 1 MB of text: more than one DynamoDB item holds uncompressed
    assert await state.workflow_run("big") == big
    assert [r.id for r in await state.workflow_runs(workflow="weekly-sales")] == ["big"]


async def test_remembered_records_are_read_until_their_ttl_passes_and_survive_a_restart(
        make_store: Callable[..., StateStore], tmp_path: Path) -> None:
    clock = MovableClock()
    store = make_store(tmp_path, clock)
    many = {f"thread:{i:03d}": f"card-{i}" for i in range(60)}  # more than one DynamoDB batch
    await store.remember("card-token", many, timedelta(hours=6))
    await store.remember("rated-message", {"thread:001": "turn-a"}, timedelta(days=7))
    await store.aclose()
    store = make_store(tmp_path, clock)  # a restart, or another replica
    try:
        assert await store.recall("card-token", "thread:059") == "card-59"
        assert await store.recall("rated-message", "thread:001") == "turn-a"  # namespaces are apart
        assert await store.recall("card-token", "thread:999") is None
        await store.remember("card-token", {"thread:001": "card-newer"}, timedelta(hours=6))
        assert await store.recall("card-token", "thread:001") == "card-newer"
        clock.now += timedelta(hours=6, seconds=2)
        assert await store.recall("card-token", "thread:000") is None  # expired: gone, deleted or not
        assert await store.recall("card-token", "thread:001") is None
        assert await store.recall("rated-message", "thread:001") == "turn-a"  # its own, longer TTL
        await store.remember("card-token", {"thread:000": "card-again"}, timedelta(hours=6))
        assert await store.recall("card-token", "thread:000") == "card-again"  # kept again from now
    finally:
        await store.aclose()
