"""A scripted agent read from a JSON file, so ``datathread serve`` can run one.

``DATATHREAD_AGENT=scripted`` with ``DATATHREAD_AGENT_SCRIPT=/path/script.json`` answers every turn
from the file, with no cloud account and no kernel: load tests, demos, and the tests that drive
several real ``serve`` processes use it. The file is a list of rules tried in order; the first
whose ``when`` occurs in the turn's text gives the turn's steps (a rule without ``when`` matches
every turn; a turn no rule matches gets a short notice)::

    [{"when": "slow", "steps": [{"rationale": "Working on it."}, {"sleep": 30}, {"final": "done"}]},
     {"steps": [{"final": "answer to {text}"}]}]

Steps: ``{"rationale": str}``, ``{"code": str}``, ``{"output": str}``, ``{"notice": str}``,
``{"final": str}``, ``{"sleep": seconds}`` and ``{"file": name, "text": str}`` (written into the
workspace and announced like any backend's file, so a CSV becomes a dataset). ``{text}`` in a
string stands for the turn's text (replaced literally: a turn's text is never a format string).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import events as ev
from bot.agents.scripted import ScriptedAgent, Sleep, Step, WriteFile
from bot.config import ConfigError
from bot.conversation import Turn

SCRIPT_VARIABLE = "DATATHREAD_AGENT_SCRIPT"
NO_RULE = "This scripted agent has no answer for that message."


@dataclass(frozen=True)
class Rule:
    """Turns whose text contains ``when`` (every turn when ``None``) play ``steps``."""

    when: str | None
    steps: tuple[Mapping[str, Any], ...]


def _step(raw: Mapping[str, Any], text: str) -> Step:
    def fill(key: str) -> str:
        return str(raw[key]).replace("{text}", text)

    if "sleep" in raw:
        return Sleep(float(raw["sleep"]))
    if "file" in raw:
        return WriteFile(fill("file"), fill("text").encode() if "text" in raw else b"")
    for key, make in (("rationale", ev.Rationale), ("code", ev.CodeStarted), ("output", ev.CodeOutput),
                      ("notice", ev.Notice), ("final", ev.FinalText)):
        if key in raw:
            return make(fill(key))
    raise ConfigError(f"{SCRIPT_VARIABLE}: a step must be one of rationale, code, output, notice, final, "
                      f"sleep or file, got {sorted(raw)}")


def parse_rules(data: Any) -> tuple[Rule, ...]:
    """The rules of a script's JSON; ``ConfigError`` says what is wrong with it."""
    if not isinstance(data, list):
        raise ConfigError(f"{SCRIPT_VARIABLE}: the file must hold a JSON list of rules")
    rules = []
    for raw in data:
        if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list):
            raise ConfigError(f"{SCRIPT_VARIABLE}: each rule needs a list of steps")
        steps = tuple(raw["steps"])
        for step in steps:  # a bad step is reported at start-up, not at the first turn that plays it
            if not isinstance(step, dict):
                raise ConfigError(f"{SCRIPT_VARIABLE}: each step must be a JSON object")
            _step(step, "")
        rules.append(Rule(raw.get("when"), steps))
    return tuple(rules)


def play(rules: Sequence[Rule], turn: Turn) -> list[Step]:
    """The steps of the first rule that matches ``turn``."""
    for rule in rules:
        if rule.when is None or rule.when in turn.text:
            return [_step(step, turn.text) for step in rule.steps]
    return [ev.Notice(NO_RULE, "warning")]


def scripted_agent_from_env(env: Mapping[str, str]) -> ScriptedAgent:
    """The ``DATATHREAD_AGENT=scripted`` backend, its script read from ``DATATHREAD_AGENT_SCRIPT``."""
    named = env.get(SCRIPT_VARIABLE, "").strip()
    if not named:
        raise ConfigError(f"DATATHREAD_AGENT=scripted needs {SCRIPT_VARIABLE}, the path of a JSON script")
    try:
        rules = parse_rules(json.loads(Path(named).expanduser().read_text()))
    except OSError as exc:
        raise ConfigError(f"{SCRIPT_VARIABLE}: cannot read {named} ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{SCRIPT_VARIABLE}: {named} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    return ScriptedAgent(lambda turn: play(rules, turn), record=False)
