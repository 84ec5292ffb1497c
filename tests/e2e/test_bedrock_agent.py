"""Bedrock Agents backend against a local fake of the service, through the real boto3 client.

Datasets are registered in the real ``LocalDatasetStore`` (scoped to the turn's thread and owner),
so "pageable" means a real page is read back.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from bot.agents.bedrock_agents.agent import BedrockAgent, BedrockAgentConfig, diagnose
from bot.conversation import Attachment, Conversation, Turn
from bot.datasets.local import LocalDatasetStore
from bot.datasets.registrar import ThreadDatasets
from bot.doctor import format_checks
from bot.events import (
    AgentEvent,
    CodeError,
    CodeOutput,
    CodeStarted,
    DatasetProduced,
    FileProduced,
    FinalText,
    Notice,
    Rationale,
    TurnFailed,
)
from bot.messages import ThreadKey
from bot.workspace import Workspace
from tests.fakes import bedrock_agent_runtime as fx
from tests.fakes.bedrock_agent_runtime import FakeBedrockAgents, Hang, Pause, PreStreamError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "bedrock_agent"
KEY = ThreadKey("console", "local", "main", "t1")


@contextlib.asynccontextmanager
async def bedrock_agents_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[FakeBedrockAgents]:
    """The fake service running, boto3 pointed at it with test credentials and no local AWS config."""
    service = FakeBedrockAgents()
    url = await service.start()
    for name, value in {
        "AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME": url, "AWS_ENDPOINT_URL_BEDROCK_AGENT": url,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-creds"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)  # AWS_REGION alone must be enough
    try:
        yield service
    finally:
        await service.close()


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[FakeBedrockAgents]:
    async with bedrock_agents_service(monkeypatch, tmp_path) as service:
        yield service


@pytest.fixture
async def agent() -> AsyncIterator[BedrockAgent]:
    backend = BedrockAgent(BedrockAgentConfig("AB12CD34EF", "LIVE123456", throttle_retries=2, backoff_seconds=0.05))
    yield backend
    await backend.aclose()


def make_turn(tmp_path: Path, store: LocalDatasetStore, text: str = "hi",
              attachments: tuple[Attachment, ...] = ()) -> Turn:
    now = datetime.now(UTC)
    ws = Workspace(tmp_path / "ws").ensure()
    conv = Conversation("c1", KEY, "conv-" + KEY.digest, "U123", ws.root, now, now)
    return Turn(conv, text, attachments, ws, ThreadDatasets(store, conv))


def attach(turn_dir: Path, name: str, data: bytes, media: str = "text/csv") -> Attachment:
    ws = Workspace(turn_dir / "ws").ensure()
    path = ws.unique(name)
    path.write_bytes(data)
    return Attachment(name, path, len(data), media)


async def collect(backend: BedrockAgent, turn: Turn) -> list[AgentEvent]:
    return [e async for e in backend.run(turn)]


def answer(events: Sequence[AgentEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, FinalText))


def png(width: int = 8, height: int = 6) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


# -- the seed's three examples ----------------------------------------------------------------------

@pytest.mark.e2e
async def test_greatest_books_csv_arrives_as_file_and_pageable_dataset(fake, agent, store, tmp_path):
    fake.queue.append(fx.scenario_json(str(FIXTURES / "greatest_books.json")))
    turn = make_turn(tmp_path, store, "Please generate a list of the 10 greatest books of all time as a CSV file.")

    events = await collect(agent, turn)

    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Rationale", "CodeStarted", "CodeOutput", "FileProduced", "DatasetProduced", "FinalText",
                     "FinalText"]
    rationale, started, output = events[0], events[1], events[2]
    assert isinstance(rationale, Rationale) and isinstance(started, CodeStarted) and isinstance(output, CodeOutput)
    assert rationale.step == started.step == output.step == "7c2a91d0-5b3e-4f0c-9a11-2f6e8d4b1c55-0"
    assert answer(events) == "Here is the list of the 10 greatest books of all time as a CSV file: greatest_books.csv."
    produced = events[3]
    assert isinstance(produced, FileProduced) and produced.name == "greatest_books.csv"
    assert produced.path.read_text().startswith("rank,title,author,year\n1,Don Quixote")
    dataset = events[4]
    assert isinstance(dataset, DatasetProduced) and dataset.dataset.rows == 10
    page = await store.page(dataset.dataset.id, 2, 4)
    assert [row[1] for row in page.rows] == ["War and Peace", "Moby Dick", "The Divine Comedy", "Hamlet"]

    sent = fake.requests[0]
    assert sent.session_id == turn.conversation.session_id
    assert sent.body["enableTrace"] is True and sent.body["inputText"] == turn.text
    assert "sessionState" not in sent.body and "memoryId" not in sent.body


@pytest.mark.e2e
async def test_stock_chart_from_attached_csv_sends_the_file_byte_identical(fake, agent, store, tmp_path):
    prices = "date,close\n" + "".join(f"2024-01-{d:02d},{100 + d * 1.5:.2f}\n" for d in range(1, 31))
    data = prices.encode()
    att = attach(tmp_path, "cours_bourse_été.csv", data)
    chart = png()
    fake.queue.append([
        fx.rationale("ab12-0", "I will load the price file and plot a 7-day moving average."),
        fx.code("ab12-0", "df = pd.read_csv('cours_bourse_ete.csv')\ndf['ma'] = df.close.rolling(7).mean()"),
        fx.code_result("ab12-0", output="", files=["stock_chart.png"]),
        fx.files(("stock_chart.png", "image/png", chart)),
        fx.chunk("Here is the chart: moving average in red, actual prices in blue."),
    ])
    turn = make_turn(tmp_path, store, "Given the attached price data file, please make me a chart with moving "
                     "average in red and actual data in blue", (att,))

    events = await collect(agent, turn)

    assert not any(isinstance(e, Notice) for e in events)
    [(name, media, sent)] = fake.requests[0].files()
    assert sent == data and media == "text/csv" and name == "cours_bourse_ete.csv"
    assert fake.requests[0].body["sessionState"]["files"][0]["useCase"] == "CODE_INTERPRETER"
    assert fake.requests[0].body["sessionState"]["files"][0]["source"]["sourceType"] == "BYTE_CONTENT"
    files = [e for e in events if isinstance(e, FileProduced)]
    assert [(f.name, f.media_type) for f in files] == [("stock_chart.png", "image/png")]
    assert files[0].path.read_bytes() == chart
    assert not any(isinstance(e, DatasetProduced) for e in events)
    assert answer(events).startswith("Here is the chart")


@pytest.mark.e2e
async def test_sales_and_details_of_200_companies_with_box_plot(fake, agent, store, tmp_path):
    sales = "COMPANY_ID,COMPANY_NAME,SALES_2024\n" + "".join(
        f"C{i:05d},Company {i},{(i * 3571) % 700000 if i % 2 else 500000 + (i * 7919) % 1500000}\n"
        for i in range(1, 201))
    details = "COMPANY_ID,COMPANY_STATE_CODE\n" + "".join(
        f"C{i:05d},{'NY' if i % 2 else 'CA'}\n" for i in range(1, 201))
    fake.queue.append([
        fx.rationale("cd34-0", "I will generate both files, check every rule, then draw box plots."),
        fx.code("cd34-0", "sales = make_sales()\nsales.to_csv('SALES.csv')"),
        fx.code_result("cd34-0", error="Traceback (most recent call last):\n  File \"<stdin>\", line 1\n"
                                       "NameError: name 'make_sales' is not defined"),
        fx.rationale("cd34-1", "The helper was missing; I will define it and run again."),
        fx.code("cd34-1", "def make_sales(): ...\nsales.to_csv('SALES.csv'); details.to_csv('DETAILS.csv')"),
        fx.code_result("cd34-1", output="All rules hold: 200 companies, shared ids, east 0-700k, west 500k-2M\n",
                       files=["SALES.csv", "DETAILS.csv", "sales_box_plot.png"]),
        fx.files(("SALES.csv", "text/csv", sales.encode()), ("DETAILS.csv", "text/csv", details.encode()),
                 ("sales_box_plot.png", "image/png", png(16, 12))),
        fx.final_response("cd34-2", "Both files are ready and the box plot compares east and west."),
        fx.chunk("Both files are ready and the box plot compares east and west."),
    ])

    events = await collect(agent, make_turn(tmp_path, store, "generate two csv files for me ..."))

    errors = [e for e in events if isinstance(e, CodeError)]
    assert [(e.ename, e.evalue, e.step) for e in errors] == [("NameError", "name 'make_sales' is not defined",
                                                              "cd34-0")]
    assert [(e.name, e.step) for e in events if isinstance(e, FileProduced)] == [
        ("SALES.csv", "cd34-1"), ("DETAILS.csv", "cd34-1"), ("sales_box_plot.png", "cd34-1")]  # the step that made them
    datasets = [e.dataset for e in events if isinstance(e, DatasetProduced)]
    assert [(d.name, d.rows) for d in datasets] == [("SALES", 200), ("DETAILS", 200)]
    last = await store.page(datasets[0].id, 20, 10)
    assert last.rows[-1][0] == "C00200" and not last.has_next
    assert answer(events) == "Both files are ready and the box plot compares east and west."
    # The failed attempt and the retry are two steps (traceIds "-0" and "-1"), each with all its parts.
    parts = (e for e in events if isinstance(e, Rationale | CodeStarted | CodeOutput | CodeError))
    steps = [(type(e).__name__, e.step) for e in parts]
    assert steps == [("Rationale", "cd34-0"), ("CodeStarted", "cd34-0"), ("CodeError", "cd34-0"),
                     ("Rationale", "cd34-1"), ("CodeStarted", "cd34-1"), ("CodeOutput", "cd34-1")]


# -- failures ----------------------------------------------------------------------------------------

@pytest.mark.e2e
async def test_in_stream_throttling_keeps_what_was_shown_and_fails_the_turn(fake, agent, store, tmp_path):
    fake.queue.append([fx.rationale("t-0", "Looking at the data."),
                       fx.stream_exception("throttlingException", "Rate exceeded")])

    events = await collect(agent, make_turn(tmp_path, store))

    assert isinstance(events[0], Rationale)
    assert isinstance(events[-1], TurnFailed) and events[-1].retryable
    assert "busy" in events[-1].message and "try again" in events[-1].message
    assert len(fake.requests) == 1  # never retried once something was shown


@pytest.mark.e2e
async def test_in_stream_dependency_failure_names_the_cause(fake, agent, store, tmp_path):
    fake.queue.append([fx.stream_exception("dependencyFailedException", "Lambda failed")])
    events = await collect(agent, make_turn(tmp_path, store))
    assert isinstance(events[-1], TurnFailed) and "depends on" in events[-1].message


@pytest.mark.e2e
async def test_access_denied_before_the_stream_tells_the_user_to_ask_an_admin(fake, agent, store, tmp_path):
    fake.queue.append([PreStreamError(403, "AccessDeniedException", "User is not authorized")])

    events = await collect(agent, make_turn(tmp_path, store))

    assert len(events) == 1 and isinstance(events[0], TurnFailed)
    assert "access denied" in events[0].message and "admin" in events[0].message
    assert not events[0].retryable


@pytest.mark.e2e
async def test_validation_error_passes_on_the_reason(fake, agent, store, tmp_path):
    fake.queue.append([PreStreamError(400, "ValidationException", "Input file too large.")])
    events = await collect(agent, make_turn(tmp_path, store))
    assert isinstance(events[-1], TurnFailed) and "(Input file too large)" in events[-1].message


@pytest.mark.e2e
async def test_throttling_before_the_stream_is_retried_then_succeeds(fake, agent, store, tmp_path):
    fake.queue.extend([[PreStreamError(429, "ThrottlingException", "Rate exceeded")],
                       [fx.rationale("r-0", "ok"), fx.chunk("Done.")]])

    events = await collect(agent, make_turn(tmp_path, store))

    assert len(fake.requests) == 2
    assert not any(isinstance(e, TurnFailed) for e in events) and answer(events) == "Done."


@pytest.mark.e2e
async def test_throttling_as_the_first_stream_event_is_retried_too(fake, agent, store, tmp_path):
    fake.queue.extend([[fx.stream_exception("throttlingException", "slow down")], [fx.chunk("Done.")]])
    events = await collect(agent, make_turn(tmp_path, store))
    assert len(fake.requests) == 2 and answer(events) == "Done."


@pytest.mark.e2e
async def test_throttling_that_persists_ends_the_turn_after_a_few_tries(fake, agent, store, tmp_path):
    fake.queue.extend([[PreStreamError(429, "ThrottlingException", "Rate exceeded")]] * 5)
    events = await collect(agent, make_turn(tmp_path, store))
    assert len(fake.requests) == 3 and isinstance(events[-1], TurnFailed) and events[-1].retryable


@pytest.mark.e2e
async def test_failure_trace_without_answer_is_shown_then_fails(fake, agent, store, tmp_path):
    fake.queue.append([fx.failure("f-0", "Model output could not be parsed")])
    events = await collect(agent, make_turn(tmp_path, store))
    assert isinstance(events[0], Notice) and "could not be parsed" in events[0].text
    assert isinstance(events[-1], TurnFailed)


@pytest.mark.e2e
async def test_missing_credentials_and_unreachable_endpoint(fake, agent, store, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    events = await collect(agent, make_turn(tmp_path, store))
    assert isinstance(events[-1], TurnFailed) and "No AWS credentials" in events[-1].message

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    await fake.close()  # nothing listens on that port any more
    other = BedrockAgent(agent.config)
    events = await collect(other, make_turn(tmp_path, store))
    await other.aclose()
    assert isinstance(events[-1], TurnFailed) and "Could not reach Amazon Bedrock" in events[-1].message


# -- trace variety ---------------------------------------------------------------------------------------

@pytest.mark.e2e
async def test_guardrail_intervention_is_explained(fake, agent, store, tmp_path):
    fake.queue.append([fx.guardrail("g-0"), fx.chunk("Sorry, I cannot help with that.")])
    events = await collect(agent, make_turn(tmp_path, store, "which stock should I buy?"))
    [notice] = [e for e in events if isinstance(e, Notice)]
    assert notice.level == "warning" and "guardrail blocked your message" in notice.text
    assert "denied topic" in notice.text and "Rephrase" in notice.text
    assert answer(events) == "Sorry, I cannot help with that."


@pytest.mark.e2e
async def test_the_same_file_twice_in_a_turn_is_delivered_once(fake, agent, store, tmp_path):
    chart = png()
    fake.queue.append([fx.files(("chart.png", "image/png", chart)), fx.files(("chart.png", "image/png", chart)),
                       fx.files(("chart.png", "image/png", png(9, 9))), fx.chunk("done")])
    events = await collect(agent, make_turn(tmp_path, store))
    files = [e for e in events if isinstance(e, FileProduced)]
    assert [f.name for f in files] == ["chart.png", "chart-2.png"]  # same name, new bytes: a new file


@pytest.mark.e2e
async def test_unknown_trace_kind_is_logged_and_skipped(fake, agent, store, tmp_path, caplog):
    fake.queue.append([fx.unknown_trace("quantumTrace"), fx.rationale("u-0", "still fine"), fx.chunk("ok")])
    with caplog.at_level(logging.WARNING):
        events = await collect(agent, make_turn(tmp_path, store))
    assert [type(e).__name__ for e in events] == ["Rationale", "FinalText", "FinalText"]
    assert "quantumTrace" in caplog.text


@pytest.mark.e2e
async def test_slow_stream_shows_rationale_before_the_answer(fake, agent, store, tmp_path):
    fake.queue.append([fx.rationale("s-0", "Thinking about it."), Pause(0.6), fx.chunk("The answer.")])
    seen: list[tuple[float, AgentEvent]] = []
    async for event in agent.run(make_turn(tmp_path, store)):
        seen.append((time.monotonic(), event))
    rationale_at = next(t for t, e in seen if isinstance(e, Rationale))
    answer_at = next(t for t, e in seen if isinstance(e, FinalText))
    assert answer_at - rationale_at >= 0.5


@pytest.mark.e2e
async def test_streamed_final_response_in_many_chunks_is_not_duplicated(fake, store, tmp_path):
    text = "Résumé: the mean is 4.2 € and the median 3.9 €."
    raw = text.encode()
    cut = raw.index("€".encode()) + 1  # split inside a multi-byte character
    fake.queue.append([fx.final_response("x-0", text), fx.chunk_bytes(raw[:10]), fx.chunk_bytes(raw[10:cut]),
                       fx.chunk_bytes(raw[cut:])])
    backend = BedrockAgent(BedrockAgentConfig("AB12CD34EF", "LIVE123456", stream_final_response=True, memory=True))
    events = await collect(backend, make_turn(tmp_path, store))
    await backend.aclose()
    assert answer(events) == text
    assert len([e for e in events if isinstance(e, FinalText) and e.text]) == 3  # pieces arrive as they come
    body = fake.requests[0].body
    assert body["streamingConfigurations"] == {"streamFinalResponse": True}
    assert re.fullmatch(r"[0-9a-zA-Z._:-]{2,100}", body["memoryId"]) and "U123" not in body["memoryId"]


@pytest.mark.e2e
async def test_oversized_and_unsupported_attachments_are_left_out_with_a_notice(fake, agent, store, tmp_path):
    big = attach(tmp_path, "huge.csv", b"a,b\n" + b"1,2\n" * (11 * 1024 * 1024 // 4))
    exe = attach(tmp_path, "tool.exe", b"MZ...", "application/octet-stream")
    small = [attach(tmp_path, f"part{i}.csv", f"x\n{i}\n".encode()) for i in range(6)]
    turn = make_turn(tmp_path, store, "analyse", (big, exe, *small))

    events = await collect(agent, turn)

    notices = [e.text for e in events if isinstance(e, Notice)]
    assert events[:3] == [Notice(t, "warning") for t in notices]
    assert any("huge.csv" in t and "10 MB" in t for t in notices)
    assert any("tool.exe" in t and "CSV" in t for t in notices)
    assert any("part5.csv" in t and "at most 5 files" in t for t in notices)
    assert [name for name, _, _ in fake.requests[0].files()] == [f"part{i}.csv" for i in range(5)]
    assert answer(events) == "Hello from the fake agent."


@pytest.mark.e2e
async def test_cancelling_the_turn_closes_the_connection(fake, agent, store, tmp_path):
    fake.queue.append([fx.rationale("c-0", "Starting a long computation."), Hang()])
    got_rationale = asyncio.Event()

    async def consume() -> None:
        async for event in agent.run(make_turn(tmp_path, store)):
            if isinstance(event, Rationale):
                got_rationale.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_rationale.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(fake.disconnected.wait(), 5)
    assert fake.disconnects == 1


# -- configuration and doctor ------------------------------------------------------------------------------

ENV = {"BEDROCK_AGENT_ID": "AB12CD34EF", "BEDROCK_AGENT_ALIAS_ID": "LIVE123456"}


@pytest.mark.e2e
async def test_doctor_reports_a_working_setup(fake):
    checks = await diagnose(ENV)
    assert [(c.name, c.ok) for c in checks] == [("configuration", True), ("credentials", True), ("region", True),
                                                 ("agent", True), ("alias", True), ("code interpreter", True)]
    report = format_checks(checks)
    assert "us-east-1" in report and "Everything looks good" in report
    assert "from the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables" in report  # not botocore's "env"
    assert "data-analyst found and prepared" in report and "uses agent version 3" in report
    assert "testing" not in format_checks(checks)  # no secret in the report


@pytest.mark.e2e
async def test_doctor_explains_what_is_wrong(fake, monkeypatch):
    fake.action_groups[0] = {**fake.action_groups[0], "actionGroupState": "DISABLED"}
    fake.agent_status = "NOT_PREPARED"
    checks = {c.name: c for c in await diagnose(ENV)}
    assert not checks["agent"].ok and "Prepare" in checks["agent"].hint
    assert not checks["code interpreter"].ok and "disabled" in checks["code interpreter"].detail
    report = format_checks(list(checks.values()))
    assert "FAIL" in report and "what to do" in report

    fake.control_error = PreStreamError(403, "UnrecognizedClientException", "The security token is invalid.")
    rejected = await diagnose(ENV)
    assert (rejected[-1].name, rejected[-1].ok) == ("agent", False) and "rejected" in rejected[-1].detail
    assert "invalid or expired" in rejected[-1].detail
    fake.control_error = PreStreamError(403, "AccessDeniedException", "not authorized to perform bedrock:GetAgent")
    denied = await diagnose(ENV)
    assert "bedrock:GetAgent" in denied[-1].detail and "bedrock:InvokeAgent" in denied[-1].hint
    fake.control_error = None

    missing = {c.name: c for c in await diagnose({**ENV, "BEDROCK_AGENT_ID": "ZZ99ZZ99ZZ"})}
    assert not missing["agent"].ok and "BEDROCK_AGENT_ID" in missing["agent"].hint
    assert missing["agent"].detail == "agent ZZ99ZZ99ZZ in region us-east-1 was not found"

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    no_creds = await diagnose(ENV)
    assert (no_creds[-1].name, no_creds[-1].ok) == ("credentials", False)
    assert not (await diagnose({}))[0].ok
