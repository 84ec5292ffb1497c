"""The manifests declare every event, Web API method and scope the code relies on, let people DM
the bot, declare it as an agent, and the HTTP one points at our route."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from adapters.slack import surface, workflow_step
from adapters.slack import wiring as app
from adapters.slack.context import METHOD_SCOPES

ROOT = Path(__file__).parents[2] / "manifests" / "slack"
ADAPTER = Path(app.__file__).parent
#: Files of ``adapters/slack`` that play Slack rather than call it.
NOT_CALLERS = {"fake_web_api.py", "harness.py"}
_CALL = re.compile(r"\bclient\.([a-z]+(?:_[A-Za-z0-9]+)+)\(")
_API_CALL = re.compile(r"api_call\(\s*\"([\w.]+)\"")


def called_methods() -> set[str]:
    """Every Web API method the adapter's source calls (``client.chat_postMessage(`` -> ``chat.postMessage``)."""
    found: set[str] = set()
    for path in ADAPTER.glob("*.py"):
        if path.name in NOT_CALLERS:
            continue
        text = path.read_text()
        found |= {name.replace("_", ".").replace("upload.v2", "upload_v2") for name in _CALL.findall(text)}
        found |= set(_API_CALL.findall(text))
    return found


def test_the_method_scan_sees_the_calls_it_must_see() -> None:
    assert {"chat.postMessage", "agents.sessions.setStatus", "files.completeUploadExternal"} <= called_methods()


@pytest.mark.parametrize("name", ["manifest.yml", "manifest.socket-mode.yml"])
def test_manifest_lists_what_the_code_uses(name: str) -> None:
    manifest = yaml.safe_load((ROOT / name).read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert set(app.SCOPES) | set(surface.SCOPES) <= scopes
    assert set(app.EVENTS) <= events
    unlisted = called_methods() - set(METHOD_SCOPES)
    assert not unlisted, f"Web API methods called but not in METHOD_SCOPES: {unlisted}"
    assert {s for s in METHOD_SCOPES.values() if s} <= scopes
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    socket = manifest["settings"]["socket_mode_enabled"]
    assert socket is (name != "manifest.yml")
    if not socket:
        assert manifest["settings"]["event_subscriptions"]["request_url"].endswith(app.PATH)
        assert manifest["settings"]["interactivity"]["request_url"].endswith(app.PATH)


@pytest.mark.parametrize("name", ["manifest.yml", "manifest.socket-mode.yml"])
def test_manifest_declares_the_workflow_builder_step_the_code_handles(name: str) -> None:
    manifest = yaml.safe_load((ROOT / name).read_text())
    function = manifest["functions"][workflow_step.CALLBACK_ID]
    assert function["title"] == "Run a datathread workflow"
    inputs = function["input_parameters"]
    assert tuple(inputs["properties"]) == workflow_step.INPUTS
    assert set(inputs["required"]) == {"workflow", "channel"}
    assert inputs["properties"]["channel"]["type"] == "slack#/types/channel_id"
    outputs = function["output_parameters"]
    assert tuple(outputs["properties"]) == workflow_step.OUTPUTS and set(outputs["required"]) == set(
        workflow_step.OUTPUTS)
    settings = manifest["settings"]
    assert workflow_step.EVENT in settings["event_subscriptions"]["bot_events"]
    assert settings["function_runtime"] == "remote" and settings["org_deploy_enabled"] is True
    assert "chat:write" in manifest["oauth_config"]["scopes"]["bot"]  # the results thread is posted with it


@pytest.mark.parametrize("name", ["manifest.yml", "manifest.socket-mode.yml"])
def test_manifest_lets_people_message_the_bot_and_declares_it_an_agent(name: str) -> None:
    features = yaml.safe_load((ROOT / name).read_text())["features"]
    home = features["app_home"]
    assert home["messages_tab_enabled"] is True and home["messages_tab_read_only_enabled"] is False
    assert features["agent_view"]["agent_description"]
    assert "assistant_view" not in features  # being retired for the agent experience
