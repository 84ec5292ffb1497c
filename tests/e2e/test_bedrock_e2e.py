"""Bedrock Agents through the real ``datathread chat`` and ``datathread doctor`` processes.

The fake service runs in this test's event loop; the CLI's boto3 client reaches it through the
standard endpoint-override variables, exactly as it would reach AWS.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes import bedrock_agent_runtime as fx

pytestmark = pytest.mark.e2e  # starts servers, kernels or subprocesses

BOOKS = b"rank,title\n" + b"".join(f"{i},Book {i}\n".encode() for i in range(1, 31))


@pytest.fixture
async def fake() -> AsyncIterator[fx.FakeBedrockAgents]:
    service = fx.FakeBedrockAgents()
    await service.start()
    yield service
    await service.close()


def cli_env(fake: fx.FakeBedrockAgents, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATATHREAD_HOME": str(home),
        "BEDROCK_AGENT_ID": "AB12CD34EF",
        "BEDROCK_AGENT_ALIAS_ID": "LIVE123456",
        "AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME": fake.url,
        "AWS_ENDPOINT_URL_BEDROCK_AGENT": fake.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }


async def run_cli(env: dict[str, str], cwd: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=cwd, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 90)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_console_shows_rationale_before_answer_and_pages_the_csv(fake: fx.FakeBedrockAgents,
                                                                       tmp_path: Path) -> None:
    fake.queue.append([
        fx.rationale("t1-0", "I will write the list to a CSV file."),
        fx.Pause(0.5),
        fx.code("t1-0", "import pandas as pd\npd.DataFrame(...).to_csv('books.csv')"),
        fx.code_result("t1-0", output="written", files=["books.csv"]),
        fx.files(("books.csv", "text/csv", BOOKS)),
        fx.files(("books.csv", "text/csv", BOOKS)),  # delivered twice by the service: shown once
        fx.chunk("Here are the 30 books."),
    ])
    code, out, err = await run_cli(cli_env(fake, tmp_path / "home"), tmp_path, "chat", stdin="list books\nnext\n")
    assert code == 0, err
    assert out.index("I will write the list") < out.index("Here are the 30 books.")
    assert "written" in out and out.count("file books.csv") == 1
    assert 'dataset "books" · 30 rows × 2 columns' in out
    assert "rows 21–30 of 30" in out and "│ Book 30 │" in out
    [request] = fake.requests
    assert request.body["inputText"] == "list books" and request.body["enableTrace"] is True
    assert request.session_id.startswith("dt-")


async def test_console_reports_access_denied_in_plain_words(fake: fx.FakeBedrockAgents, tmp_path: Path) -> None:
    fake.queue.append([fx.PreStreamError(403, "AccessDeniedException", "not authorized to perform InvokeAgent")])
    code, out, _ = await run_cli(cli_env(fake, tmp_path / "home"), tmp_path, "chat", stdin="hi\n")
    assert code == 0
    assert "access" in out.lower() and "Traceback" not in out


async def test_doctor_says_what_works(fake: fx.FakeBedrockAgents, tmp_path: Path) -> None:
    code, out, err = await run_cli(cli_env(fake, tmp_path / "home"), tmp_path, "doctor")
    assert code == 0, out + err
    assert "code interpreter" in out.lower()
    fake.action_groups.clear()
    code, out, err = await run_cli(cli_env(fake, tmp_path / "home"), tmp_path, "doctor")
    assert code == 1 and "code interpreter" in out.lower()
