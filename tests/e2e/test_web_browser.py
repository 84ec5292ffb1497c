"""The workspace view and the dataset grid in a real browser (headless Chromium), opened from the link
the owner gets in a Slack ephemeral message (the local fake Web API records it)."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bot import events as ev
from bot.conversation import Turn
from tests.browser import chromium, needs_browser, screenshot, wait
from tests.fakes.scripted_agent import ScriptedAgent, Sleep, Step, WriteFile
from tests.fakes.slack_api import FakeSlack
from tests.slack_harness import SlackBot, mention, until

pytestmark = [pytest.mark.e2e, needs_browser]

CHANNEL = "C0CHAN"
NOTES = bytes(range(256)) * 5 + b"end"  # 1,283 bytes: "1.3 KB"
REPORT = b"region,sales\nnorth,10\nsouth,20\n"


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 32), (20, 90, 200)).save(out, "PNG")
    return out.getvalue()


PICTURE = _png()
ROWS = 1_000_000
EVIL_CELL = "<img src=x onerror=\"document.title='pwned';alert(1)\">"
EVIL_SCRIPT = "<script>document.title='pwned2';alert(2)</script>"


def script(turn: Turn) -> list[Step]:
    if "slow" in turn.text:
        return [ev.CodeStarted("step_one = 1"), WriteFile("first.txt", b"1"), Sleep(1.0),
                ev.CodeStarted("# write the late table\nlate.to_csv('late.csv')"), WriteFile("late.csv", REPORT),
                Sleep(2.5), ev.FinalText("slow done")]
    return [WriteFile("notes.bin", NOTES), WriteFile("report.csv", REPORT), WriteFile("picture.png", PICTURE),
            ev.FinalText("files ready")]




@pytest.fixture
async def bot(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackBot]:
    b = await SlackBot(fake, tmp_path / "home", ScriptedAgent(script), web=True).start()
    yield b
    await b.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "profile", tmp_path / "downloads") as driver:
        yield driver


def _button(message: Any, label: str) -> dict[str, Any] | None:
    for block in message.blocks:
        for e in block.get("elements", ()) if block["type"] == "actions" else ():
            if e.get("text", {}).get("text") == label:
                return dict(e)
    return None


async def workspace_link(bot: SlackBot, fake: FakeSlack, ts: str, text: str = "make files") -> str:
    """Run a turn, click its Workspace button, and return the link from the ephemeral message."""
    await bot.send(mention(text, ts), f"Ev{ts}")
    await until(lambda: any(_button(m, "Workspace") for m in fake.thread(CHANNEL, ts)), what="the turn's end")
    turn = next(m for m in fake.thread(CHANNEL, ts) if _button(m, "Workspace"))
    button = _button(turn, "Workspace")
    assert button is not None
    before = len(fake.ephemeral)
    click = {"type": "button", "action_id": button["action_id"], "block_id": "b", "value": button["value"]}
    assert await bot.click(click, user="UALICE", channel=CHANNEL, message_ts=turn.ts, thread_ts=ts) == 200
    await until(lambda: len(fake.ephemeral) > before, what="the ephemeral link")
    message = fake.ephemeral[-1]
    assert message["user"] == "UALICE"
    found = re.search(r"<(http://[^|>]+/w/open#[^|>]+)\|", str(message["blocks"]))
    assert found is not None, message
    return found.group(1)


def _open(driver: Any, link: str) -> str:
    driver.get(link)
    wait(driver, lambda d: re.search(r"/w/[^/]+/$", d.current_url), what="the workspace page")
    wait(driver, lambda d: d.find_elements("css selector", "#files tbody tr"), what="the file rows")
    return str(driver.current_url)


def _rows(driver: Any) -> dict[str, dict[str, str]]:
    found = driver.execute_script(
        "return [...document.querySelectorAll('#files tbody tr')].map(r => [r.dataset.name,"
        " r.querySelector('.size').textContent, r.querySelector('.type').textContent])")
    return {name: {"size": size, "type": kind} for name, size, kind in found}


async def test_the_owner_opens_the_link_sees_files_with_sizes_and_downloads_one(
        bot: SlackBot, fake: FakeSlack, browser: Any, tmp_path: Path) -> None:
    link = await workspace_link(bot, fake, "1700000900.000100")
    url = await asyncio.to_thread(_open, browser, link)
    assert "#" not in url and "open" not in url  # the token left the address bar
    rows = await asyncio.to_thread(_rows, browser)
    assert rows["notes.bin"]["size"] == "1.3 KB"
    assert rows["report.csv"] == {"size": f"{len(REPORT)} B", "type": "text/csv"}
    preview = await asyncio.to_thread(wait, browser, lambda d: d.execute_script(
        "const i = document.querySelector(\"tr[data-name='picture.png'] img\"); return i && i.naturalWidth"),
        10, "the image preview")
    assert preview == 64
    await asyncio.to_thread(browser.find_element("css selector", "tr[data-name='notes.bin'] a").click)
    target = tmp_path / "downloads" / "notes.bin"
    await until(lambda: target.exists() and target.stat().st_size == len(NOTES), what="the download")
    assert target.read_bytes() == NOTES
    shot = await asyncio.to_thread(screenshot, browser, "workspace.png")
    await asyncio.to_thread(browser.set_window_size, 390, 844)
    overflow = await asyncio.to_thread(browser.execute_script,
                                       "return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0  # a phone-sized screen needs no sideways scrolling
    await asyncio.to_thread(screenshot, browser, "workspace-phone.png")
    assert shot.exists()


async def test_a_file_appears_within_two_seconds_while_a_slow_turn_runs(
        bot: SlackBot, fake: FakeSlack, browser: Any) -> None:
    ts = "1700000950.000100"
    link = await workspace_link(bot, fake, ts)
    await asyncio.to_thread(_open, browser, link)
    workspace = next(iter((bot.home / "workspaces").iterdir()))

    def shown() -> float:
        wait(browser, lambda d: d.find_elements("css selector", "tr[data-name='late.csv']"), 20, "late.csv")
        return time.monotonic()

    async def written() -> float:
        await until(lambda: any(workspace.rglob("late.csv")), 20, "late.csv on disk")
        return time.monotonic()

    states: list[str] = []

    def running() -> None:
        wait(browser, lambda d: d.find_element("id", "turn-state").text == "Running…", 20, "running state")
        states.append("running")

    watch = asyncio.ensure_future(asyncio.to_thread(running))
    await bot.send(mention("slow please", "1700000960.000100", thread_ts=ts), "Ev-slow")
    shown_at, written_at = await asyncio.gather(asyncio.to_thread(shown), written())
    await watch
    assert shown_at - written_at < 2.0 and states == ["running"]
    steps = await asyncio.to_thread(lambda: [li.text for li in browser.find_elements("css selector", "#steps li")])
    assert steps == ["step_one = 1", "# write the late table"]
    await asyncio.to_thread(wait, browser, lambda d: d.find_element("id", "turn-state").text == "Done", 20, "done")


def _grid_state(driver: Any) -> dict[str, Any]:
    return dict(driver.execute_script(
        "const b = document.getElementById('rows'); return {ready: b.dataset.ready, sort: b.dataset.sort,"
        " first: Number(b.dataset.first), rows: [...b.querySelectorAll('.row')].map("
        "r => [...r.children].map(c => c.textContent))}"))


def _settle(driver: Any, sort: str = "-") -> dict[str, Any]:
    try:
        return dict(wait(driver, lambda d: (s := _grid_state(d))["ready"] == "1" and s["sort"] == sort and s, 30,
                         f"rows painted (sort {sort})"))
    except AssertionError as exc:  # say what the page showed and what its console said
        s = _grid_state(driver)
        shown = {k: v for k, v in s.items() if k != "rows"}
        raise AssertionError(f"{exc}: grid {shown}, console {driver.get_log('browser')}") from None


def _scroll(driver: Any, where: str) -> dict[str, Any]:
    """Scroll to ``where`` and wait for the rows painted there (the painted window must move first:
    the rows of the previous position are already marked ready)."""
    before = _grid_state(driver)
    driver.execute_script(f"const s = document.getElementById('scroller'); s.scrollTop = {where};")
    wait(driver, lambda d: _grid_state(d)["first"] != before["first"], 15, "the painted rows to move")
    return _settle(driver, before["sort"])


def _check(row: list[str], frame: pd.DataFrame, number: int) -> None:
    """A painted row: its row number, and values equal to row ``number - 1`` of ``frame``."""
    assert row[0] == f"{number:,}"
    expected = frame.iloc[number - 1]
    assert int(row[1]) == expected["id"] and float(row[2]) == pytest.approx(expected["score"])
    assert row[3] == expected["label"]


async def test_a_million_rows_scroll_to_the_end_and_back_sort_and_chart(
        bot: SlackBot, fake: FakeSlack, browser: Any) -> None:
    link = await workspace_link(bot, fake, "1700001000.000100")
    grant = bot.engine.web.tokens.open_pass(link.split("#", 1)[1], "link")  # type: ignore[union-attr]
    assert grant is not None
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"id": np.arange(ROWS), "score": rng.integers(0, 10**6, ROWS) / 100,
                          "label": [EVIL_CELL, EVIL_SCRIPT] + [f"row {i}" for i in range(2, ROWS)]})
    meta = await bot.engine.datasets.register_frame(frame, name="million", thread=grant.thread, owner="UALICE")
    url = await asyncio.to_thread(_open, browser, link)
    await asyncio.to_thread(browser.get, f"{url}d/{meta.id}/")
    top = await asyncio.to_thread(_settle, browser)
    _check(top["rows"][0], frame, 1)
    summary = await asyncio.to_thread(lambda: browser.find_element("id", "summary").text)
    assert summary.startswith("1,000,000 rows · 3 columns")
    types = await asyncio.to_thread(lambda: [e.text for e in browser.find_elements("css selector", ".coltype")])
    assert types == ["int", "float", "str"]
    # Data is data: markup in cells shows as text and runs nothing.
    assert top["rows"][0][3] == EVIL_CELL and top["rows"][1][3] == EVIL_SCRIPT
    assert await asyncio.to_thread(lambda: browser.title) == "million · datathread"
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        await asyncio.to_thread(lambda: browser.switch_to.alert.text)
    await asyncio.to_thread(screenshot, browser, "grid.png")

    end = await asyncio.to_thread(_scroll, browser, "s.scrollHeight")
    last = next(r for r in end["rows"] if r[0] == f"{ROWS:,}")
    _check(last, frame, ROWS)
    back = await asyncio.to_thread(_scroll, browser, "0")
    _check(back["rows"][0], frame, 1)

    header = "//button[span[@class='colname' and text()='score']]"
    await asyncio.to_thread(lambda: browser.find_element("xpath", header).click())
    ascending = await asyncio.to_thread(_settle, browser, "1a")
    ordered = frame.sort_values("score", kind="stable")
    first = ascending["rows"][0]
    assert float(first[2]) == ordered["score"].iloc[0] and frame.loc[int(first[1]), "score"] == float(first[2])
    await asyncio.to_thread(lambda: browser.find_element("xpath", header).click())
    await asyncio.to_thread(_settle, browser, "1d")
    bottom = await asyncio.to_thread(_scroll, browser, "s.scrollHeight")
    lowest = next(r for r in bottom["rows"] if r[0] == f"{ROWS:,}")
    assert float(lowest[2]) == ordered["score"].iloc[0]

    def chart() -> int:
        browser.find_element("css selector", "#chart-panel summary").click()
        browser.find_element("css selector", "#chart-form button").click()
        return int(wait(browser, lambda d: d.execute_script(
            "const i = document.getElementById('chart'); return !i.hidden && i.naturalWidth"), 30, "the chart"))

    assert await asyncio.to_thread(chart) > 300
    await asyncio.to_thread(screenshot, browser, "grid-chart.png")


async def test_a_tampered_link_shows_the_short_refusal(bot: SlackBot, fake: FakeSlack, browser: Any) -> None:
    link = await workspace_link(bot, fake, "1700001100.000100")
    base, token = link.split("#", 1)
    tampered = f"{base}#{token[:-3]}{'A' if token[-3] != 'A' else 'B'}{token[-2:]}"

    def refused() -> str:
        browser.get(tampered)
        wait(browser, lambda d: d.current_url.endswith("/w/denied"), what="the refusal")
        return str(browser.find_element("tag name", "h1").text)

    assert await asyncio.to_thread(refused) == "This link does not work"


async def test_markup_in_file_names_shows_as_text(bot: SlackBot, fake: FakeSlack, browser: Any) -> None:
    link = await workspace_link(bot, fake, "1700001200.000100")
    workspace = next(iter((bot.home / "workspaces").iterdir()))
    name = "<img src=x onerror=\"document.title='pwned';alert(3)\">.txt"
    (workspace / name).write_bytes(b"x")
    await asyncio.to_thread(_open, browser, link)
    rows = await asyncio.to_thread(lambda: wait(browser, lambda d: name in _rows(d) and _rows(d), what="the name"))
    assert rows[name]["size"] == "1 B"
    assert await asyncio.to_thread(lambda: browser.title) == "Workspace · datathread"
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        await asyncio.to_thread(lambda: browser.switch_to.alert.text)
