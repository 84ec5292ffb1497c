"""Carrying out intents: the access rules and what the user sees, against the real dataset store,
SQLite state and the recording surface (clicks through ``Engine.act``, typed words through
``Engine.submit``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pandas as pd
import pytest

from bot import events as ev
from bot.actions import BAD_TOKEN, FILE_GONE, NOT_YOUR_TURN, NOT_YOURS, NOTHING_RUNNING, THANKS
from bot.config import Settings
from bot.datasets.local import LocalDatasetStore
from bot.datasets.model import DatasetMeta, Page, SortSpec
from bot.engine import Engine
from bot.intents import ColumnOrder, Download, DrawChart, Feedback, Intent, ListFiles, PostFile, ShowPage, Stop
from bot.messages import ActionInvoked, IncomingMessage, MessageRef, ThreadKey
from bot.presenter import file_key
from bot.reply import Chart, Notice, Reply, Select, Status, Table
from bot.storage.local import SqliteStateStore
from bot.surface import SurfaceError
from bot.workspace import Workspace
from tests.fakes.scripted_agent import ScriptedAgent, Sleep, Step
from tests.surfaces import RecordingSurface
from tests.waiting import until

T1 = ThreadKey("test", "team", "C1", "1.0")
T2 = ThreadKey("test", "team", "C1", "2.0")
OWNER, OTHER = "U1", "U2"


def _notices(surface: RecordingSurface, kind: str) -> list[Notice]:
    return [b for c in surface.of(kind) if c.reply is not None for b in c.reply.blocks if isinstance(b, Notice)]


def _texts(surface: RecordingSurface, kind: str) -> list[str]:
    return [n.text for n in _notices(surface, kind)]


def _table(reply: Reply | None) -> Table:
    assert reply is not None
    return next(b for b in reply.blocks if isinstance(b, Table))


@pytest.fixture
def script() -> list[list[Step]]:
    """Turns the scripted agent plays, in order (each test appends what it needs)."""
    return []


@pytest.fixture
def participants() -> bool:
    """The ``DATATHREAD_ALLOW_PARTICIPANTS`` setting (a test parametrizes it to turn it on)."""
    return False


@pytest.fixture
async def engine(tmp_path: Path, store: LocalDatasetStore, script: list[list[Step]],
                 participants: bool) -> AsyncIterator[Engine]:
    env = {"DATATHREAD_HOME": str(tmp_path), "DATATHREAD_PAGE_SIZE": "10"}
    if participants:
        env["DATATHREAD_ALLOW_PARTICIPANTS"] = "1"
    settings = Settings.from_env(env)
    settings.home.mkdir(parents=True, exist_ok=True)
    turns = iter(script)
    agent = ScriptedAgent(lambda turn: next(turns, [ev.FinalText("ok")]))
    built = Engine(settings, SqliteStateStore(settings.state_db, settings.workspaces), store, agent)
    yield built
    await built.state.aclose()  # the store fixture closes the dataset store itself


async def _dataset(engine: Engine, thread: ThreadKey = T1, rows: int = 25) -> DatasetMeta:
    """A dataset of ``thread`` owned by OWNER, in a conversation OWNER started."""
    await engine.open_conversation(thread, OWNER)
    frame = pd.DataFrame({"id": [f"R{i:03d}" for i in range(1, rows + 1)], "value": [float(i) for i in range(rows)]})
    return await engine.datasets.register_frame(frame, name="sales", thread=thread, owner=OWNER)


async def _click(engine: Engine, intent: Intent, *, user: str = OWNER, thread: ThreadKey = T1,
                 token: str | None = None) -> RecordingSurface:
    surface = RecordingSurface()
    token = engine.seal(thread, intent) if token is None else token
    await engine.act(ActionInvoked("test", token, user, thread, MessageRef("C1", "m0")), surface)
    return surface


async def _type(engine: Engine, text: str, surface: RecordingSurface | None = None) -> RecordingSurface:
    surface = surface or RecordingSurface()
    await engine.submit(IncomingMessage(T1, OWNER, text), surface)
    return surface


# ---- clicks ----------------------------------------------------------------------------------------


async def test_a_page_click_updates_its_own_message_with_the_rows_of_that_page(engine: Engine) -> None:
    meta = await _dataset(engine)
    surface = await _click(engine, ShowPage(meta.id, 2, ColumnOrder(1, True)))
    [update] = surface.of("update")
    assert update.ref == MessageRef("C1", "m0")
    assert [r[0] for r in _table(update.reply).rows] == [f"R{i:03d}" for i in range(15, 5, -1)]


async def test_a_forged_token_gets_the_bad_token_notice_only_to_the_clicker(engine: Engine) -> None:
    await _dataset(engine)
    surface = await _click(engine, ListFiles(), token="forged.token")
    assert _texts(surface, "notify") == [BAD_TOKEN] and surface.of("notify")[0].user == OWNER
    assert not surface.of("post") and not surface.of("update")


async def test_a_dataset_of_another_thread_is_refused_like_a_forged_token(engine: Engine) -> None:
    foreign = await _dataset(engine, T2)
    await _dataset(engine, T1)
    surface = await _click(engine, ShowPage(foreign.id, 1), thread=T1)  # sealed for T1, naming T2's data
    assert _texts(surface, "notify") == [BAD_TOKEN] and not surface.of("update")


async def test_another_user_cannot_page_the_owner_s_dataset(engine: Engine) -> None:
    meta = await _dataset(engine)
    surface = await _click(engine, ShowPage(meta.id, 2), user=OTHER)
    assert _texts(surface, "notify") == [BAD_TOKEN] and not surface.of("update")


@pytest.mark.parametrize("participants", [True])
async def test_participants_may_page_and_list_files_when_the_setting_allows_it(engine: Engine) -> None:
    meta = await _dataset(engine)
    paged = await _click(engine, ShowPage(meta.id, 2), user=OTHER)
    assert _table(paged.of("update")[0].reply).rows[0][0] == "R011"
    listed = await _click(engine, ListFiles(), user=OTHER)
    assert _texts(listed, "notify") == ["The workspace is empty."]


async def test_a_column_the_dataset_does_not_have_is_refused_like_a_forged_token(engine: Engine) -> None:
    meta = await _dataset(engine)
    for intent in (ShowPage(meta.id, 1, ColumnOrder(7)), DrawChart(meta.id, "line", 0, 9)):
        surface = await _click(engine, intent)
        assert _texts(surface, "notify") == [BAD_TOKEN] and not surface.of("upload")


async def test_the_workspace_and_the_stop_button_are_for_the_owner_only(engine: Engine) -> None:
    await _dataset(engine)
    for intent in (ListFiles(), PostFile("0" * 16)):
        surface = await _click(engine, intent, user=OTHER)
        assert _texts(surface, "notify") == [NOT_YOURS]
    assert _texts(await _click(engine, Stop(), user=OTHER), "notify") == [NOT_YOUR_TURN]


async def test_a_listed_file_is_posted_byte_for_byte_and_a_vanished_one_says_so(engine: Engine) -> None:
    conversation, _ = await engine.open_conversation(T1, OWNER)
    await Workspace(conversation.workspace).ensure().write("report.txt", b"quarterly\n")
    listed = await _click(engine, ListFiles())
    [menu] = [i for c in listed.of("notify") for b in c.reply.blocks  # type: ignore[union-attr]
              for i in getattr(b, "items", ()) if isinstance(i, Select)]
    [option] = menu.options
    posted = await _click(engine, option.intent, token=option.token)
    assert posted.uploaded == {"report.txt": b"quarterly\n"}
    gone = await _click(engine, PostFile(file_key("deleted.txt")))
    assert _texts(gone, "notify") == [FILE_GONE] and not gone.uploaded


async def test_download_posts_the_whole_dataset_and_keeps_it_in_the_workspace(engine: Engine) -> None:
    meta = await _dataset(engine, rows=25)
    surface = await _click(engine, Download(meta.id, "csv"))
    data = surface.uploaded["sales.csv"].decode()
    assert data.splitlines()[0].replace('"', "") == "id,value" and len(data.splitlines()) == 26
    conversation, _ = await engine.open_conversation(T1, OWNER)
    assert (Workspace(conversation.workspace).root / "exports" / "sales.csv").is_file()


async def test_a_token_bound_to_one_user_or_past_its_expiry_is_refused(engine: Engine) -> None:
    meta = await _dataset(engine)
    tokens = engine.actions.tokens
    bound = tokens.seal(T1, ShowPage(meta.id, 2), user=OWNER)
    assert _texts(await _click(engine, ShowPage(meta.id, 2), user=OTHER, token=bound), "notify") == [BAD_TOKEN]
    expired = tokens.seal(T1, ShowPage(meta.id, 2), expires=int(time.time()) - 1)
    assert _texts(await _click(engine, ShowPage(meta.id, 2), token=expired), "notify") == [BAD_TOKEN]
    assert (await _click(engine, ShowPage(meta.id, 2), token=bound)).of("update")


async def test_stop_cancels_the_thread_s_running_turn(engine: Engine, script: list[list[Step]]) -> None:
    script.append([ev.Rationale("thinking"), Sleep(30), ev.FinalText("never")])
    turn_surface = RecordingSurface()
    running = engine.submit(IncomingMessage(T1, OWNER, "slow"), turn_surface)
    await until(lambda: turn_surface.of("live.start"))
    clicked = await _click(engine, Stop())
    await running
    assert [c.reply.summary for c in turn_surface.of("live.finish")] == ["Stopped"]  # type: ignore[union-attr]
    assert not clicked.of("notify")  # the turn's own message says it stopped


async def test_stop_with_nothing_running_says_so(engine: Engine) -> None:
    await engine.open_conversation(T1, OWNER)
    assert _texts(await _click(engine, Stop()), "notify") == [NOTHING_RUNNING]


async def test_feedback_is_logged_and_acknowledged(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    await engine.open_conversation(T1, OWNER)
    with caplog.at_level(logging.INFO, logger="bot.actions"):
        surface = await _click(engine, Feedback(False), user=OTHER)
    assert _texts(surface, "notify") == [THANKS]
    assert any("negative" in r.getMessage() and OTHER in r.getMessage() for r in caplog.records)


# ---- typed commands --------------------------------------------------------------------------------


async def test_typed_next_and_sort_continue_from_the_thread_s_last_view(engine: Engine) -> None:
    await _dataset(engine)
    surface = await _type(engine, "sort value desc")
    await _type(engine, "next", surface)
    first, second = (_table(c.reply).rows[0][0] for c in surface.of("post"))
    assert (first, second) == ("R025", "R015")


async def test_typed_command_failures_are_posted_in_the_thread(engine: Engine) -> None:
    surface = await _type(engine, "next")
    await _dataset(engine)
    await _type(engine, "sort profit", surface)
    await _type(engine, "next in nowhere", surface)
    texts = _texts(surface, "post")
    assert texts[0] == "There is no dataset in this conversation yet."
    assert texts[1].startswith("No column 'profit' in sales.") and texts[2].startswith('No dataset "nowhere"')


class FailingUpload(RecordingSurface):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def upload(self, path: Path, *, name: str, title: str | None = None) -> None:
        raise self.error


async def test_a_platform_failure_of_a_typed_command_is_shown_not_swallowed(engine: Engine) -> None:
    await _dataset(engine)
    surface = await _type(engine, "download", FailingUpload(SurfaceError("the upload was refused")))
    assert _texts(surface, "post") == ["That did not work: the upload was refused"]


async def test_a_bug_behind_a_button_is_logged_and_shown_as_a_short_notice(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    meta = await _dataset(engine)
    surface = FailingUpload(RuntimeError("boom"))
    await engine.act(ActionInvoked("download", engine.seal(T1, Download(meta.id, "csv")), OWNER, T1), surface)
    assert _texts(surface, "notify") == ["That did not work; details are in the log."]
    assert any(r.exc_info for r in caplog.records)


# ---- file links --------------------------------------------------------------------------------------


async def test_a_file_link_opens_its_file_for_its_purpose_until_the_conversation_is_reset(engine: Engine) -> None:
    conversation, _ = await engine.open_conversation(T1, OWNER)
    path = await Workspace(conversation.workspace).ensure().write("report.pdf", b"%PDF")
    link = await engine.file_link(T1, path, purpose="download", ttl=60)
    assert link is not None
    assert await engine.open_file_link(link, purpose="download") == path
    assert await engine.open_file_link(link, purpose="consent") is None
    assert await engine.open_file_link(link, purpose="download", thread=T2) is None
    assert await engine.file_link(T2, path, purpose="download", ttl=60) is None  # no conversation there
    await engine.state.reset_conversation(T1, OWNER)
    assert await engine.open_file_link(link, purpose="download") is None


class SortGate(LocalDatasetStore):
    """The real store, whose sorted pages wait for ``ready`` (as a page past the first ones waits for
    a column's full order on a large dataset)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.ready = asyncio.Event()

    async def page(self, dataset_id: str, number: int, size: int, sort: SortSpec | None = None) -> Page:
        if sort is not None:
            await self.ready.wait()
        return await super().page(dataset_id, number, size, sort)


async def test_a_sorted_page_waiting_for_its_order_says_sorting_then_shows_the_page_in_the_same_message(
    tmp_path: Path,
) -> None:
    store = SortGate(tmp_path / "datasets")
    settings = Settings.from_env({"DATATHREAD_HOME": str(tmp_path), "DATATHREAD_PAGE_SIZE": "10"})
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = Engine(settings, SqliteStateStore(settings.state_db, settings.workspaces), store,
                    ScriptedAgent(lambda turn: [ev.FinalText("ok")]))
    engine.actions.sorting_notice_after = 0.05
    try:
        meta = await _dataset(engine)
        surface = RecordingSurface()
        token = engine.seal(T1, ShowPage(meta.id, 2, ColumnOrder(1, True)))
        click = asyncio.ensure_future(
            engine.act(ActionInvoked("test", token, OWNER, T1, MessageRef("C1", "m0")), surface))
        await until(lambda: surface.of("update"))
        [sorting] = surface.of("update")
        assert sorting.ref == MessageRef("C1", "m0") and sorting.reply is not None
        [status] = [b for b in sorting.reply.blocks if isinstance(b, Status)]
        assert status.state == "working" and status.text.startswith("Sorting 25 rows by value")
        store.ready.set()
        await click
        _, shown = surface.of("update")
        assert shown.ref == MessageRef("C1", "m0")
        assert [r[0] for r in _table(shown.reply).rows] == [f"R{i:03d}" for i in range(15, 5, -1)]
    finally:
        await engine.state.aclose()
        await store.aclose()


async def test_a_sorted_page_that_is_ready_at_once_is_shown_without_a_sorting_message(engine: Engine) -> None:
    meta = await _dataset(engine)
    surface = await _click(engine, ShowPage(meta.id, 1, ColumnOrder(1)))
    [update] = surface.of("update")
    assert [r[0] for r in _table(update.reply).rows][:2] == ["R001", "R002"]


# ---- charts: as data where the platform draws them, else PNGs ----------------------------------------


async def _chart(engine: Engine, intent: Intent, surface: RecordingSurface) -> RecordingSurface:
    await engine.act(ActionInvoked("test", engine.seal(T1, intent), OWNER, T1, MessageRef("C1", "m0")), surface)
    return surface


def _charts(surface: RecordingSurface) -> list[Chart]:
    return [b for c in surface.of("post") if c.reply is not None for b in c.reply.blocks if isinstance(b, Chart)]


async def test_a_small_bar_chart_is_sent_as_data_where_the_platform_draws_charts(engine: Engine) -> None:
    meta = await _dataset(engine, rows=5)
    surface = await _chart(engine, DrawChart(meta.id, "bar", 0, 1), RecordingSurface(native_charts=True))
    [chart] = _charts(surface)
    assert chart.data.categories == ("R005", "R004", "R003", "R002", "R001")  # largest bar first
    assert chart.data.series[0].values == (4.0, 3.0, 2.0, 1.0, 0.0)
    assert not surface.of("upload")  # no PNG besides it


async def test_a_refused_native_chart_comes_as_the_png_and_later_charts_skip_the_attempt(engine: Engine) -> None:
    meta = await _dataset(engine, rows=5)
    surface = RecordingSurface(native_charts=True, refuse_charts=True)
    await _chart(engine, DrawChart(meta.id, "bar", 0, 1), surface)
    assert len(surface.of("refused")) == 1 and not _charts(surface)
    [upload] = surface.of("upload")
    assert upload.path is not None and upload.path.suffix == ".png" and upload.path.stat().st_size > 0
    await _chart(engine, DrawChart(meta.id, "line", 0, 1), surface)
    assert len(surface.of("refused")) == 1 and len(surface.of("upload")) == 2


async def test_larger_aggregates_and_surfaces_without_native_charts_get_the_png(engine: Engine) -> None:
    meta = await _dataset(engine, rows=25)
    native = await _chart(engine, DrawChart(meta.id, "bar", 0, 1), RecordingSurface(native_charts=True))
    small = await _dataset(engine, rows=5)
    plain = await _chart(engine, DrawChart(small.id, "bar", 0, 1), RecordingSurface())
    for surface in (native, plain):
        assert not _charts(surface) and len(surface.of("upload")) == 1
