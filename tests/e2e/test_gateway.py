"""The gateway executor against a real Jupyter Enterprise Gateway (``tests/gateway_harness.py``).

The agent contract suite also runs on it (``tests/contract/test_agent_backends.py``, backend
``gateway``); here are the promises of its own: files and datasets as with a local kernel, time
limits, reattaching after a restart, a culled kernel replaced with one note, Converse on it, doctor.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.agents.gateway.doctor import diagnose
from bot.agents.kernel.agent import LocalKernelAgent
from bot.config import GatewaySettings, Settings
from bot.conversation import Attachment, Conversation, Turn, media_type
from bot.datasets.local import LocalDatasetStore
from bot.datasets.registrar import ThreadDatasets
from bot.events import AgentEvent, CodeOutput, DatasetProduced, FileProduced, Notice, TurnFailed
from bot.messages import ThreadKey
from bot.storage.local import SqliteStateStore
from bot.workspace import Workspace
from tests.gateway_harness import Gateway, gateway  # noqa: F401  (the session fixture)
from tests.waiting import until

if TYPE_CHECKING:
    from bot.agents.gateway.executor import GatewayExecutor

pytestmark = pytest.mark.e2e  # a gateway process and its kernels

#: ``executor.KERNEL_NAMESPACE``, where kernel ids are kept (that module imports jupyter_server, ~1 s: not at
#: collection, which the fast lane pays too).
KERNEL_NAMESPACE = "gateway-kernel"


@dataclass
class Harness:
    """A conversation, its stores, and executors on the test gateway (several: a restart is a new one)."""

    gw: Gateway
    tmp: Path
    state: SqliteStateStore
    store: LocalDatasetStore
    conversation: Conversation

    def settings(self, **env: str) -> Settings:
        return Settings.from_env({"DATATHREAD_HOME": str(self.tmp / "home"), **self.gw.env(), **env})

    def executor(self, **env: str) -> GatewayExecutor:
        from bot.agents.gateway.executor import GatewayExecutor

        settings = self.settings(**env)
        assert settings.gateway is not None
        return GatewayExecutor(settings, settings.gateway, self.state, interrupt_grace=3.0)

    async def turn(self, text: str, files: dict[str, bytes] | None = None) -> Turn:
        workspace = Workspace(self.conversation.workspace).ensure()
        attachments = []
        for name, data in (files or {}).items():
            path = await workspace.write(name, data)
            attachments.append(Attachment(name, path, len(data), media_type(path)))
        return Turn(self.conversation, text, tuple(attachments), workspace,
                    ThreadDatasets(self.store, self.conversation))

    async def run(self, executor: GatewayExecutor, code: str, files: dict[str, bytes] | None = None,
                  ) -> list[AgentEvent]:
        return [e async for e in executor.execute(await self.turn(code, files), code)]


@pytest.fixture
async def h(gateway: Gateway, tmp_path: Path) -> AsyncIterator[Harness]:  # noqa: F811
    state = SqliteStateStore(tmp_path / "state.sqlite3", tmp_path / "home" / "workspaces")
    store = LocalDatasetStore(tmp_path / "datasets")
    conversation = await state.start_conversation(ThreadKey("console", "local", "gw", tmp_path.name), "alice")
    yield Harness(gateway, tmp_path, state, store, conversation)
    kernel = await state.get_value(KERNEL_NAMESPACE, conversation.id)
    if isinstance(kernel, dict):  # kernels outlive executors by design: the test ends its own
        gateway.api("DELETE", f"/api/kernels/{kernel['kernel_id']}")
    await store.aclose()
    await state.aclose()


def out(events: Sequence[AgentEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, CodeOutput))


def notices(events: Sequence[AgentEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, Notice)]


async def test_output_datasets_figures_and_files_arrive_as_with_a_local_kernel(h: Harness) -> None:
    executor = h.executor()
    blob = os.urandom(2_500_000)  # several chunks each way
    try:
        code = ("import pandas as pd, matplotlib.pyplot as plt\n"
                "data = open('blob.bin', 'rb').read()\n"
                "open('copy.bin', 'wb').write(data)\n"
                "print('read', len(data), flush=True)\n"
                "sales = pd.DataFrame({'region': ['east', 'west'], 'amount': [3, 5]})\n"
                "sales.to_csv('sales.csv', index=False)\n"
                "plt.plot([1, 2, 3])\n"
                "display(sales)")
        events = await h.run(executor, code, {"blob.bin": blob})
        assert not [e for e in events if isinstance(e, TurnFailed)]
        assert "read 2500000" in out(events)
        files = {e.name: e for e in events if isinstance(e, FileProduced)}
        assert set(files) >= {"copy.bin", "sales.csv", "figures/figure-1.png"}
        assert files["copy.bin"].path.read_bytes() == blob
        assert files["figures/figure-1.png"].path.read_bytes().startswith(b"\x89PNG")
        datasets = [e.dataset for e in events if isinstance(e, DatasetProduced)]
        assert [d.name for d in datasets] == ["sales", "sales"]  # the displayed table and the CSV
        assert datasets[0].rows == 2
        # Nothing comes back twice: the next run announces only what it makes.
        events = await h.run(executor, "open('more.txt', 'w').write('x')")
        assert [e.name for e in events if isinstance(e, FileProduced)] == ["more.txt"]
    finally:
        await executor.aclose()


async def test_a_run_past_the_time_limit_is_interrupted_and_variables_stay(h: Harness) -> None:
    executor = h.executor(DATATHREAD_RUN_TIMEOUT_SECONDS="2")
    try:
        await h.run(executor, "kept = 7")
        events = await h.run(executor, "import time\nprint('start', flush=True)\ntime.sleep(30)")
        assert "start" in out(events)
        assert any("time limit" in n and "Variables are kept" in n for n in notices(events))
        assert "7" in out(await h.run(executor, "print(kept)"))
    finally:
        await executor.aclose()


async def test_a_restarted_bot_reattaches_to_the_kernel_and_keeps_variables(h: Harness) -> None:
    first = h.executor()
    await h.run(first, "answer = 41")
    await first.aclose()  # the bot stops; the kernel stays on the gateway
    second = LocalKernelAgent(h.executor())  # a new process (or replica) on the same state store
    try:
        events = [e async for e in second.run(await h.turn("answer"))]  # a bare name runs if the kernel has it
        assert out(events).strip() == "41"
        events = [e async for e in second.run(await h.turn("print(answer + 1)"))]
        assert out(events).strip() == "42"
        assert notices(events) == []
    finally:
        await second.aclose()


async def test_an_idle_conversation_lets_go_of_its_kernel_so_the_gateway_can_cull_it(h: Harness) -> None:
    executor = h.executor(DATATHREAD_KERNEL_IDLE_SECONDS="0.5")
    try:
        await h.run(executor, "idle = 'still here'")
        kernel = await h.state.get_value(KERNEL_NAMESPACE, h.conversation.id)

        def connections() -> object:
            status, model = h.gw.api("GET", f"/api/kernels/{kernel['kernel_id']}")
            return model.get("connections") if status == 200 and isinstance(model, dict) else None

        assert connections() == 1
        await until(lambda: connections() == 0, within=10)  # the gateway culls only kernels nobody is connected to
        events = await h.run(executor, "print(idle)")
        assert out(events).strip() == "still here" and notices(events) == []
    finally:
        await executor.aclose()


async def test_a_kernel_culled_while_the_bot_was_down_is_replaced_with_the_reset_note(h: Harness) -> None:
    first = h.executor()
    await h.run(first, "gone = 1")
    await first.aclose()
    kernel = await h.state.get_value(KERNEL_NAMESPACE, h.conversation.id)
    assert h.gw.api("DELETE", f"/api/kernels/{kernel['kernel_id']}")[0] == 204
    second = h.executor()
    try:
        events = await h.run(second, "print('gone' in globals())")
        assert out(events).strip() == "False"
        assert [n for n in notices(events) if "variables from before are gone" in n]
        assert (await h.state.get_value(KERNEL_NAMESPACE, h.conversation.id))["kernel_id"] != kernel["kernel_id"]
    finally:
        await second.aclose()


async def test_a_culled_kernel_is_replaced_and_the_thread_is_told_once(h: Harness) -> None:
    executor = h.executor()
    try:
        await h.run(executor, "lost = 1\nopen('kept.txt', 'w').write('still here')")
        kernel = await h.state.get_value(KERNEL_NAMESPACE, h.conversation.id)
        assert h.gw.api("DELETE", f"/api/kernels/{kernel['kernel_id']}")[0] == 204  # as the gateway's culler does
        events = await h.run(executor, "print('lost' in globals(), open('kept.txt').read())")
        assert out(events).strip() == "False still here"  # variables reset; files copied into the new kernel
        assert len([n for n in notices(events) if "variables from before are gone" in n]) == 1
        assert notices(await h.run(executor, "print(1)")) == []
    finally:
        await executor.aclose()


async def test_files_over_the_transfer_cap_stay_put_with_one_notice(h: Harness) -> None:
    executor = h.executor(DATATHREAD_GATEWAY_FILE_MAX_MB="0.001")  # 1,000 bytes
    try:
        events = await h.run(executor, "print(__import__('os').path.exists('big.csv'))", {"big.csv": b"n\n" * 1000})
        assert out(events).strip() == "False"
        assert any("big.csv" in n and "not copied to the kernel" in n for n in notices(events))
        events = await h.run(executor, "open('large.txt', 'w').write('y' * 5000)")
        assert any("large.txt" in n and "stayed on the kernel" in n for n in notices(events))
        assert not [e for e in events if isinstance(e, FileProduced)]
        assert not any("big.csv" in n for n in notices(await h.run(executor, "print(2)")))  # told once
    finally:
        await executor.aclose()


async def test_the_local_kernel_agent_runs_on_the_gateway_from_settings(h: Harness) -> None:
    from bot.agents.gateway.executor import GatewayExecutor
    from bot.composition import build_agent

    agent = build_agent(h.settings(), h.state, {})
    assert isinstance(agent, LocalKernelAgent) and isinstance(agent.executor, GatewayExecutor)
    try:
        events = [e async for e in agent.run(await h.turn("```python\nprint(6 * 7)\n```"))]
        assert out(events).strip() == "42"
    finally:
        await agent.aclose()


async def test_the_converse_agent_drives_a_gateway_kernel(gateway: Gateway, tmp_path: Path,  # noqa: F811
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.agents.converse.agent import ConverseAgent
    from bot.agents.converse.config import ConverseConfig
    from bot.agents.gateway.executor import GatewayExecutor
    from tests.e2e.test_converse import answer, aws_env
    from tests.fakes.bedrock_runtime import Call, Say, reply

    async with aws_env(tmp_path, monkeypatch) as env:
        settings = Settings.from_env({"DATATHREAD_HOME": str(tmp_path / "home"), **gateway.env()})
        assert settings.gateway is not None
        executor = GatewayExecutor(settings, settings.gateway, env.state)
        agent = ConverseAgent(ConverseConfig(model_id="m", executor="gateway", rationale_holdback_chars=80),
                              executor, env.state)
        conversation = await env.conversation()
        make = ("import pandas as pd\ntotals = pd.DataFrame({'region': ['east', 'west'], 'sales': [3, 5]})\n"
                "totals.to_csv('totals.csv', index=False)\nprint(totals.sales.sum())")
        env.runtime.script = [reply(Call("run_python", {"code": make})), reply(Say("Total sales are 8."))]
        try:
            events = [e async for e in agent.run(await env.turn(conversation, "total sales?"))]
            assert "8" in out(events)
            assert [e.dataset.name for e in events if isinstance(e, DatasetProduced)] == ["totals"]
            assert answer(events) == "Total sales are 8."
        finally:
            await agent.release(conversation)
            await agent.aclose()


def test_doctor_checks_the_gateway_instead_of_a_local_kernel_and_sandbox(gateway: Gateway,  # noqa: F811
                                                                           tmp_path: Path) -> None:
    from tests.e2e.test_first_run import cli

    result = cli(tmp_path, "doctor", **gateway.env())
    assert f"[ok] gateway: {gateway.url} reachable, token accepted" in result.stdout, result.stdout + result.stderr
    assert "sandbox" not in result.stdout and "[ok] kernel:" not in result.stdout


async def test_an_unreachable_gateway_ends_the_turn_with_a_short_retryable_message(tmp_path: Path) -> None:
    from adapters.local_server import free_port
    from bot.agents.gateway.executor import GatewayExecutor

    settings = Settings.from_env({"DATATHREAD_HOME": str(tmp_path), "DATATHREAD_EXECUTOR": "gateway",
                                  "JUPYTER_GATEWAY_URL": f"http://127.0.0.1:{free_port()}"})
    assert settings.gateway is not None
    state = SqliteStateStore(tmp_path / "state.sqlite3", settings.workspaces)
    store = LocalDatasetStore(tmp_path / "datasets")
    conversation = await state.start_conversation(ThreadKey("console", "local", "gw", "down"), "alice")
    turn = Turn(conversation, "print(1)", (), Workspace(conversation.workspace).ensure(),
                ThreadDatasets(store, conversation))
    executor = GatewayExecutor(settings, settings.gateway, state)
    try:
        events = [e async for e in executor.execute(turn, "print(1)")]
        [failed] = events
        assert isinstance(failed, TurnFailed) and failed.retryable
        assert "gateway could not be reached" in failed.message and "Traceback" not in failed.message
        [check] = await diagnose(settings.gateway)
        assert not check.ok and "could not be reached" in check.detail and "JUPYTER_GATEWAY_URL" in check.hint
    finally:
        await executor.aclose()
        await store.aclose()
        await state.aclose()


async def test_doctor_reports_the_gateway_its_kernel_specs_and_a_wrong_token(gateway: Gateway) -> None:  # noqa: F811
    good = GatewaySettings(gateway.url, gateway.token, gateway.kernel_name)
    [check] = await diagnose(good)
    assert check.ok and gateway.kernel_name in check.detail and "token accepted" in check.detail
    [check] = await diagnose(GatewaySettings(gateway.url, "wrong", gateway.kernel_name))
    assert not check.ok and "401" in check.detail
    [check] = await diagnose(GatewaySettings(gateway.url, gateway.token, "no-such-kernel"))
    assert not check.ok and "JUPYTER_GATEWAY_KERNEL_NAME" in check.hint
    await diagnose(good)  # leave the process-wide client pointing at the good settings
