"""A Bedrock agent fronted by Slack, end to end: the real bolt app and the real ``BedrockAgent``.

Slack is the local fake Web API (``adapters/slack/fake_web_api.py``), driven with signed requests; Bedrock
is the local fake service (``tests/fakes/bedrock_agent_runtime.py``), reached by the real boto3
client through ``AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME``. Nothing of ours is replaced.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.fake_web_api import FakeSlack, Posted
from adapters.slack.harness import SlackBot, mention, message, until
from bot.agents.bedrock_agents.agent import BedrockAgent
from bot.config import Settings
from tests.fakes import bedrock_agent_runtime as fx

pytestmark = pytest.mark.e2e  # starts servers, kernels or subprocesses

CHANNEL = "C0CHAN"
ROWS = 45  # more than one page (20 rows)
BOOKS = ("rank,title\n" + "".join(f"{i},Book {i}\n" for i in range(1, ROWS + 1))).encode()
# Bytes a careless text round trip would change: BOM, accents, CRLF, a NUL.
PRICES = "\ufeffdate,close,note\r\n".encode() + "".join(
    f"2024-01-{d:02d},{100 + d * 1.5:.2f},été\r\n" for d in range(1, 31)).encode() + b"\x00"
PNG = bytes.fromhex("89504e470d0a1a0a") + b"fake-png-body"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    f = await FakeSlack().start()
    yield f
    await f.close()


@pytest.fixture
async def bot(slack: FakeSlack, bedrock: fx.FakeBedrockAgents, tmp_path: Path) -> AsyncIterator[SlackBot]:
    env = {"BEDROCK_AGENT_ID": "AB12CD34EF", "BEDROCK_AGENT_ALIAS_ID": "LIVE123456"}
    settings = Settings.from_env(env)
    assert settings.agent == "bedrock-agents"  # the two variables alone select this backend
    agent = BedrockAgent.from_env(settings, env)
    b = await SlackBot(slack, tmp_path / "home", agent, **env).start()
    yield b
    await b.stop()
    await agent.aclose()


def shown(slack: FakeSlack, thread_ts: str) -> str:
    return "\n".join(slack.shown(m) for m in slack.thread(CHANNEL, thread_ts))


def finished(slack: FakeSlack, thread_ts: str) -> bool:
    """The turn's message is final (streaming stopped, the closing Files button is there)."""
    return any(not m.streaming and "datathread:files" in str(m.blocks) for m in slack.thread(CHANNEL, thread_ts))


def dataset_message(slack: FakeSlack, thread_ts: str) -> Posted | None:
    return next((m for m in slack.thread(CHANNEL, thread_ts)
                 if any(b["type"] in ("table", "data_table") for b in m.blocks)), None)


def table_rows(m: Posted) -> list[tuple[str, ...]]:
    (table,) = [b for b in m.blocks if b["type"] in ("table", "data_table")]
    return [tuple(c["text"] for c in row) for row in table["rows"][1:]]


def button(m: Posted, label: str) -> dict[str, Any] | None:
    for block in m.blocks:
        for e in block.get("elements", ()) if block["type"] == "actions" else ():
            if label in (e.get("text") or {}).get("text", ""):
                return e
    return None


async def test_attached_csv_reaches_bedrock_byte_identical_and_rationale_shows_before_the_answer(
        bot: SlackBot, slack: FakeSlack, bedrock: fx.FakeBedrockAgents) -> None:
    go_on = asyncio.Event()
    bedrock.queue.append([
        fx.rationale("9d1c-0", "I will load the price file and plot a 7-day moving average."),
        fx.code("9d1c-0", "df = pd.read_csv('prices.csv')\ndf['ma'] = df.close.rolling(7).mean()"),
        fx.Pause(0.3),
        fx.Gate(go_on),  # the agent is still working: Slack must already show what it did so far
        fx.code_result("9d1c-0", output="30 rows plotted", files=["chart.png"]),
        fx.files(("chart.png", "image/png", PNG)),
        fx.files(("chart.png", "image/png", PNG)),  # the service repeats the event: one upload only
        fx.rationale("9d1c-1", "The chart is ready."),
        fx.chunk("Here is the chart: moving average in red, actual prices in blue."),
    ])
    url = slack.add_user_file("cours été.csv", PRICES)
    files = [{"id": "F1", "name": "cours été.csv", "mimetype": "text/csv", "size": len(PRICES),
              "url_private_download": url}]
    ts = "1700002000.000100"
    assert await bot.send(mention("Given the attached price data file, please make me a chart with moving average",
                                  ts, kind="message", subtype="file_share", files=files), "EvB1") == 200

    await until(lambda: "7-day moving average" in shown(slack, ts), what="rationale in Slack")
    await until(lambda: "rolling(7)" in shown(slack, ts), what="generated code in Slack")
    assert "moving average in red" not in shown(slack, ts)  # the agent is still working: no answer yet
    go_on.set()
    await until(lambda: finished(slack, ts), what="turn end")

    [request] = bedrock.requests
    [(name, media, data)] = request.files()
    assert data == PRICES and media == "text/csv" and name.isascii() and name.endswith(".csv")
    assert request.body["sessionState"]["files"][0]["useCase"] == "CODE_INTERPRETER"
    assert request.body["inputText"].startswith("Given the attached price data file")
    assert re.fullmatch(r"[0-9a-zA-Z._:-]{2,100}", request.session_id)  # the service's pattern
    assert "C0CHAN" not in request.session_id and ts not in request.session_id  # never the raw Slack ids
    text = shown(slack, ts)
    assert "30 rows plotted" in text and "moving average in red" in text
    assert text.index("7-day moving average") < text.index("moving average in red")
    # Uploads are awaited before the turn's message is made final (``finished`` above): every upload
    # of the turn has been made by now.
    [chart] = slack.shared(CHANNEL)
    assert chart.name == "chart.png" and chart.data == PNG and chart.thread_ts == ts


async def test_returned_csv_is_uploaded_once_and_paged_to_the_last_row(
        bot: SlackBot, slack: FakeSlack, bedrock: fx.FakeBedrockAgents) -> None:
    bedrock.queue.append([
        fx.rationale("b00c-0", "I will write the list to a CSV file."),
        fx.code("b00c-0", "books.to_csv('greatest_books.csv', index=False)"),
        fx.code_result("b00c-0", output="saved", files=["greatest_books.csv"]),
        fx.files(("greatest_books.csv", "text/csv", BOOKS)),
        fx.files(("greatest_books.csv", "text/csv", BOOKS)),
        fx.final_response("b00c-1", f"Here are the {ROWS} greatest books as a CSV file."),
        fx.chunk(f"Here are the {ROWS} greatest books as a CSV file."),
    ])
    ts = "1700002100.000100"
    await bot.send(mention("Please generate a list of the greatest books of all time. Return it as a CSV file.",
                           ts), "EvB2")
    await until(lambda: finished(slack, ts) and dataset_message(slack, ts) is not None, what="turn and dataset")
    await until(lambda: len(slack.shared(CHANNEL)) >= 1, what="upload")
    # Uploads are awaited before the turn's message is made final (``finished`` above): every upload
    # of the turn has been made by now.

    [shared] = slack.shared(CHANNEL)
    assert shared.name == "greatest_books.csv" and shared.data == BOOKS and shared.thread_ts == ts
    assert shown(slack, ts).count(f"Here are the {ROWS} greatest books") == 1  # chunk and finalResponse: once

    m = dataset_message(slack, ts)
    assert m is not None
    seen = table_rows(m)
    for _ in range(10):  # loop guard
        nxt = button(m, "Next")
        if nxt is None:
            break
        before = m.updates
        click = {"type": "button", "action_id": nxt["action_id"], "block_id": "b", "value": nxt["value"]}
        assert await bot.click(click, user="UALICE", channel=CHANNEL, message_ts=m.ts, thread_ts=ts) == 200
        await until(partial(lambda m, b: m.updates > b, m, before), what="next page")
        seen += table_rows(m)
    assert [r[1] for r in seen] == [f"Book {i}" for i in range(1, ROWS + 1)]
    assert f"of {ROWS}" in str(m.blocks)


async def test_errors_reach_slack_in_plain_words_and_the_next_message_works(
        bot: SlackBot, slack: FakeSlack, bedrock: fx.FakeBedrockAgents) -> None:
    bedrock.queue.extend([
        [fx.PreStreamError(403, "AccessDeniedException", "User: arn:aws:iam::1:role/bot is not authorized")],
        [fx.rationale("e1-0", "Reading the data."), fx.stream_exception("throttlingException", "Rate exceeded")],
        [fx.guardrail("e3-0"), fx.chunk("Sorry, I can't help with investment advice.")],
    ])
    ts = "1700002200.000100"
    await bot.send(mention("hello", ts), "EvB3")
    await until(lambda: finished(slack, ts), what="failed turn")
    text = shown(slack, ts)
    assert "access denied" in text and "admin" in text and "arn:aws:iam" not in text

    await bot.send(message("try again", "1700002201.000001", thread_ts=ts), "EvB4")
    await until(lambda: "busy" in shown(slack, ts), what="throttled turn")
    assert "Reading the data." in shown(slack, ts)  # shown before the failure, and it stays

    await bot.send(message("which stock should I buy?", "1700002202.000001", thread_ts=ts), "EvB5")
    await until(lambda: "investment advice" in shown(slack, ts), what="guardrail turn")
    assert "guardrail" in shown(slack, ts)
    assert len(bedrock.requests) == 3 and len({r.session_id for r in bedrock.requests}) == 1
