"""The manifests list every event and scope the code relies on, and the HTTP one points at our route."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapters.slack import surface, workflow_step
from adapters.slack import wiring as app

ROOT = Path(__file__).parents[2] / "manifests" / "slack"


@pytest.mark.parametrize("name", ["manifest.yml", "manifest.socket-mode.yml"])
def test_manifest_lists_what_the_code_uses(name: str) -> None:
    manifest = yaml.safe_load((ROOT / name).read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert set(app.SCOPES) | set(surface.SCOPES) <= scopes
    assert set(app.EVENTS) <= events
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
