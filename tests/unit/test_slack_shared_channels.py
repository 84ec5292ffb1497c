"""Slack Connect shapes, pure: the receiving workspace and files sent without URLs (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.inbound import receiving_team, remote_file, to_action, to_incoming

FIXTURES = Path(__file__).parents[1] / "fixtures" / "slack"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


@pytest.mark.parametrize(
    ("body", "installed", "expected"),
    [
        (fixture("shared_channel_app_mention"), "T0001", "T0001"),
        (fixture("shared_channel_app_mention"), None, "T0001"),  # authorizations[0] over team_id
        (fixture("shared_channel_block_actions"), "T0001", "T0001"),
        (fixture("shared_channel_block_actions"), None, "T0OTHER"),  # a click carries no authorizations
        (fixture("app_mention"), None, "T0001"),
        ({"user": {"id": "U1", "team_id": "T9"}}, None, "T9"),
        ({}, None, ""),
    ],
)
def test_the_thread_key_uses_the_receiving_workspace(body: dict[str, Any], installed: str | None,
                                                     expected: str) -> None:
    assert receiving_team(body, installed) == expected


def test_a_shared_channel_click_and_mention_share_one_thread_key() -> None:
    mention, click = fixture("shared_channel_app_mention"), fixture("shared_channel_block_actions")
    click["container"]["message_ts"] = click["message"]["ts"] = "1700003000.000900"
    click["actions"] = [{"type": "button", "action_id": "datathread:page:0", "value": "tok"}]
    msg = to_incoming(mention["event"], "UBOT", receiving_team(mention, "T0001"))
    action = to_action(click, receiving_team(click, "T0001"))
    assert msg is not None and action is not None
    assert msg.thread == action.thread
    assert msg.user == action.user == "UBOB"  # user ids as Slack gives them, in both payloads


@pytest.mark.parametrize(
    ("entry", "name", "file_id", "unreadable"),
    [
        ({"id": "F1", "mode": "file_access", "file_access": "check_file_info"}, "F1", "F1", None),
        ({"id": "F2", "mode": "tombstone"}, "F2", None, "it was deleted."),
        ({"id": "F3", "name": "big.csv", "mode": "hidden_by_limit"}, "big.csv", None,
         "it is hidden by the workspace's plan limits."),
        ({"id": "F4", "name": "locked.csv", "file_access": "access_denied"}, "locked.csv", None,
         "Slack did not give me access to it."),
        ({"id": "F5", "name": "x.csv"}, "x.csv", "F5", "Slack sent no link to download it."),
        ({"id": "F6", "name": "ok.csv", "url_private": "https://files.slack.com/x"}, "ok.csv", None, None),
    ],
)
def test_every_file_is_kept_with_a_way_to_read_it_or_the_reason_it_cannot_be(
        entry: dict[str, Any], name: str, file_id: str | None, unreadable: str | None) -> None:
    f = remote_file(entry)
    assert (f.name, f.unreadable) == (name, unreadable)
    if unreadable is None:
        assert f.file_id == file_id


def test_a_check_file_info_event_keeps_every_file() -> None:
    body = fixture("shared_channel_check_file_info")
    msg = to_incoming(body["event"], "UBOT", "T0001")
    assert msg is not None
    assert [(f.name, f.unreadable is None) for f in msg.files] == [
        ("F0SHARED", True), ("old.csv", False), ("locked.csv", False)]
