"""``DATATHREAD_AGENT=scripted``: the scripted agent ``serve`` runs from a JSON file answers as its
rules say, writes its files into the real workspace, and a bad script is refused at start-up with
a message naming the variable."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import events as ev
from bot.agents.script_file import NO_RULE, scripted_agent_from_env
from bot.composition import build_agent
from bot.config import AgentKind, ConfigError, Settings
from bot.conversation import Conversation, Turn
from bot.datasets.local import LocalDatasetStore
from bot.datasets.registrar import ThreadDatasets
from bot.messages import ThreadKey
from bot.storage.local import SqliteStateStore
from bot.workspace import Workspace

RULES = [{"when": "slow", "steps": [{"rationale": "Working on it."}, {"sleep": 0.01}, {"final": "slow done"}]},
         {"when": "file", "steps": [{"file": "notes.txt", "text": "about {text}"}, {"final": "wrote it"}]},
         {"steps": [{"code": "print({text})"}, {"output": "{text}"}, {"final": "answer to {text}"}]}]


def script(tmp_path: Path, rules: object) -> dict[str, str]:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(rules))
    return {"DATATHREAD_AGENT": "scripted", "DATATHREAD_AGENT_SCRIPT": str(path), "DATATHREAD_HOME": str(tmp_path)}


def turn(tmp_path: Path, text: str, store: LocalDatasetStore) -> Turn:
    now = datetime.now(UTC)
    conversation = Conversation("c1", ThreadKey("slack", "T", "C", "1"), "s1", "U", tmp_path / "ws", now, now)
    return Turn(conversation, text, (), Workspace(conversation.workspace).ensure(), ThreadDatasets(store, conversation))


async def test_serve_s_scripted_agent_answers_by_the_first_matching_rule(tmp_path: Path) -> None:
    env = script(tmp_path, RULES)
    settings = Settings.from_env(env)
    assert settings.agent is AgentKind.SCRIPTED
    state = SqliteStateStore(tmp_path / "s.db", tmp_path / "ws")
    agent = build_agent(settings, state, env)
    store = LocalDatasetStore(tmp_path / "datasets")
    slow = [e async for e in agent.run(turn(tmp_path, "slow please", store))]
    assert slow == [ev.Rationale("Working on it."), ev.FinalText("slow done")]
    other = [e async for e in agent.run(turn(tmp_path, "{x} 6*7", store))]  # the text is put in literally
    assert other == [ev.CodeStarted("print({x} 6*7)"), ev.CodeOutput("{x} 6*7"), ev.FinalText("answer to {x} 6*7")]
    await store.aclose()
    await state.aclose()


async def test_a_scripted_file_is_written_into_the_workspace_and_announced(tmp_path: Path) -> None:
    agent = scripted_agent_from_env(script(tmp_path, RULES))
    store = LocalDatasetStore(tmp_path / "datasets")
    made = [e async for e in agent.run(turn(tmp_path, "a file", store))]
    produced = [e for e in made if isinstance(e, ev.FileProduced)]
    assert [p.name for p in produced] == ["notes.txt"] and produced[0].path.read_text() == "about a file"
    assert agent.turns == []  # a long-running serve keeps no history of turns
    await store.aclose()


async def test_a_turn_no_rule_matches_gets_a_short_notice(tmp_path: Path) -> None:
    agent = scripted_agent_from_env(script(tmp_path, [{"when": "x", "steps": [{"final": "y"}]}]))
    store = LocalDatasetStore(tmp_path / "datasets")
    assert [e async for e in agent.run(turn(tmp_path, "hello", store))] == [ev.Notice(NO_RULE, "warning")]
    await store.aclose()


@pytest.mark.parametrize("rules, says", [
    ({"steps": []}, "JSON list of rules"),
    ([{"when": "x"}], "list of steps"),
    ([{"steps": [{"dance": 1}]}], "rationale, code, output"),
    ("not json", "not valid JSON"),
])
def test_a_bad_script_is_refused_with_a_message_naming_the_variable(tmp_path: Path, rules: object, says: str) -> None:
    env = script(tmp_path, rules)
    if rules == "not json":
        Path(env["DATATHREAD_AGENT_SCRIPT"]).write_text("[{")
    with pytest.raises(ConfigError, match=says) as raised:
        scripted_agent_from_env(env)
    assert "DATATHREAD_AGENT_SCRIPT" in str(raised.value)


def test_a_missing_script_is_refused_with_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs DATATHREAD_AGENT_SCRIPT"):
        scripted_agent_from_env({"DATATHREAD_AGENT": "scripted"})
    with pytest.raises(ConfigError, match="cannot read"):
        scripted_agent_from_env({"DATATHREAD_AGENT_SCRIPT": str(tmp_path / "nowhere.json")})
