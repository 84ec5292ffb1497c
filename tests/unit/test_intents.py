"""Every intent survives sealing and every platform's click path; nothing else opens.

Exhaustive parametrization over generated intents (edge values plus a seeded random sample of
each type), so a new intent type fails ``test_the_samples_cover_every_intent_type`` until it is
generated here, and then runs through every check below.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.inbound import to_action as slack_action
from adapters.teams.inbound import thread_key
from adapters.teams.inbound import to_action as teams_action
from bot.datasets.model import CHART_KINDS
from bot.intent_tokens import BUTTON_TOKEN_LIMIT, IntentSealer
from bot.intents import (
    KINDS,
    ColumnOrder,
    Download,
    DrawChart,
    Feedback,
    FileLink,
    Intent,
    ListFiles,
    OpenWorkspace,
    PostFile,
    RevokeWorkspace,
    ShowPage,
    Stop,
    kind_of,
)
from bot.messages import ThreadKey
from bot.reply import Button, Buttons, Option, Reply, Select
from bot.tokens import TokenSigner
from renderers import slack as slack_render
from renderers import teams as teams_render
from tests.fakes.slack_api import action_body

FIXTURES = Path(__file__).parents[1] / "fixtures"
SEALER = IntentSealer(TokenSigner(b"s" * 32))
SLACK_THREAD = ThreadKey("slack", "T0001", "C0CHAN", "1700000000.000100")
NOW = 1_800_000_000
#: Dataset ids as the store makes them (``secrets.token_urlsafe(16)``: 22 characters).
DATASET_ID = "Xq3vW0rT9yZa8bC7dE6fGh"


def _samples() -> list[Intent]:
    rng = random.Random(9)
    ids = [DATASET_ID, "a", "-_" * 11]
    edge: list[Intent] = [
        ShowPage(DATASET_ID, 1), ShowPage(DATASET_ID, 999_999_999, ColumnOrder(9_999, True)),
        ShowPage("a", 2, ColumnOrder(0)), ShowPage("a", 2, None, 151), ShowPage("a", 7, ColumnOrder(3_000, True), 151),
        DrawChart(DATASET_ID, "scatter", 9_999, 9_998),
        DrawChart(DATASET_ID, "hist", 0), Download(DATASET_ID, "csv"), Download(DATASET_ID, "parquet"),
        ListFiles(), PostFile("0123456789abcdef"), Stop(), Feedback(True), Feedback(False), OpenWorkspace(),
        RevokeWorkspace(),
    ]
    generated: list[Intent] = []
    for _ in range(12):
        order = ColumnOrder(rng.randrange(10_000), rng.random() < 0.5) if rng.random() < 0.6 else None
        generated += [
            ShowPage(rng.choice(ids), rng.randrange(1, 10**9), order, rng.choice([1, rng.randrange(1, 10_000)])),
            DrawChart(rng.choice(ids), rng.choice(CHART_KINDS), rng.randrange(10_000),
                      rng.choice([None, rng.randrange(10_000)])),
            Download(rng.choice(ids), rng.choice(("csv", "parquet"))),
            PostFile(f"{rng.getrandbits(64):016x}"),
            FileLink(f"conv-{rng.getrandbits(32)}", rng.choice(["report.pdf", "charts/a b.png", "ünï/çødé.csv"]),
                     NOW + rng.randrange(1, 10**6), rng.choice(("download", "consent"))),
        ]
    return edge + generated


SAMPLES = _samples()
BUTTON_INTENTS = [i for i in SAMPLES if not isinstance(i, FileLink)]
LINKS = [i for i in SAMPLES if isinstance(i, FileLink)]


def _flip(token: str, bit: int) -> str:
    """``token`` with one bit of its decoded bytes (body, then signature) flipped, re-encoded."""
    parts = [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in token.split(".")]
    body_bits = len(parts[0]) * 8
    index, at = (0, bit) if bit < body_bits else (1, bit - body_bits)
    data = bytearray(parts[index])
    data[at // 8] ^= 1 << (at % 8)
    parts[index] = bytes(data)
    return ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts)


def _bits(token: str) -> int:
    return sum(len(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in token.split(".")) * 8


def test_the_samples_cover_every_intent_type() -> None:
    assert {type(i) for i in SAMPLES} == set(KINDS)


@pytest.mark.parametrize("intent", BUTTON_INTENTS, ids=repr)
def test_a_sealed_intent_opens_to_itself_in_its_thread_and_fits_a_slack_option(intent: Intent) -> None:
    token = SEALER.seal(SLACK_THREAD, intent)
    assert SEALER.open(token, SLACK_THREAD, "UANY", now=NOW) == intent
    bound = SEALER.seal(SLACK_THREAD, intent, user="U0ALICE", expires=NOW + 60)
    assert SEALER.open(bound, SLACK_THREAD, "U0ALICE", now=NOW) == intent
    assert max(len(token), len(bound)) <= BUTTON_TOKEN_LIMIT


@pytest.mark.parametrize("intent", BUTTON_INTENTS, ids=repr)
def test_a_token_from_another_thread_user_or_time_or_with_one_bit_flipped_opens_to_nothing(intent: Intent) -> None:
    token = SEALER.seal(SLACK_THREAD, intent)
    bound = SEALER.seal(SLACK_THREAD, intent, user="U0ALICE", expires=NOW + 60)
    neighbour = ThreadKey("slack", "T0001", "C0CHAN", "1700000000.000101")
    assert SEALER.open(token, neighbour, "UANY", now=NOW) is None
    assert SEALER.open(bound, neighbour, "U0ALICE", now=NOW) is None
    assert SEALER.open(bound, SLACK_THREAD, "U0BOB", now=NOW) is None
    assert SEALER.open(bound, SLACK_THREAD, "U0ALICE", now=NOW + 61) is None
    assert IntentSealer(TokenSigner(b"t" * 32)).open(token, SLACK_THREAD, "UANY", now=NOW) is None
    for bit in range(_bits(token)):  # every single bit of body and signature
        assert SEALER.open(_flip(token, bit), SLACK_THREAD, "UANY", now=NOW) is None
    assert SEALER.open_link(token, now=NOW) is None  # a button is never a file link


@pytest.mark.parametrize("junk", ["", ".", "a.b", "no-dot", "é.é", "e30.AAAA", "x" * 150])
def test_malformed_tokens_open_to_nothing(junk: str) -> None:
    assert SEALER.open(junk, SLACK_THREAD, "U1") is None
    assert SEALER.open_link(junk) is None


@pytest.mark.parametrize("payload", [
    {"i": ["p", "ds", 0]}, {"i": ["p", "ds", True]}, {"i": ["p", "", 1]}, {"i": ["p", "ds", 1, -1, 0]},
    {"i": ["p", "ds", 1, 0, 2]}, {"i": ["c", "ds", "pie", 0, None]}, {"i": ["d", "ds", "xlsx"]},
    {"i": ["b", 2]}, {"i": ["o", "c", "f", "download"]}, {"i": ["z"]}, {"i": "p"}, {"k": "page", "d": "ds", "p": 2},
])
def test_a_correctly_signed_payload_of_a_shape_we_never_seal_opens_to_nothing(payload: dict[str, Any]) -> None:
    signer = TokenSigner(b"s" * 32)
    token = signer.seal(payload, context=SLACK_THREAD.digest)
    assert SEALER.open(token, SLACK_THREAD, "U1", now=NOW) is None


# ---- the platform click paths: render as the presenter does, click as the platform does, open ----


def _controls(intent: Intent) -> list[Reply]:
    """The intent as a button and as the only option of a menu, each in a reply of its own."""
    token = SEALER.seal(SLACK_THREAD, intent)
    return [Reply((Buttons((Button("Go", intent, token),)),)),
            Reply((Buttons((Select("Choose", (Option("it", intent, token),)),)),))]


@pytest.mark.parametrize("intent", BUTTON_INTENTS, ids=repr)
def test_every_intent_survives_a_slack_click_on_a_button_or_a_menu(intent: Intent) -> None:
    for reply in _controls(intent):
        (message,) = slack_render.render(reply)
        (element,) = next(b for b in message.blocks if b["type"] == "actions")["elements"]
        clicked = {"action_id": element["action_id"], "block_id": "b", "type": element["type"]}
        if element["type"] == "button":
            clicked["value"] = element["value"]
        else:
            clicked["selected_option"] = element["options"][0]
        body = action_body(clicked, user="U0ALICE", channel=SLACK_THREAD.channel, message_ts="1700000400.000500",
                           thread_ts=SLACK_THREAD.thread, team=SLACK_THREAD.team)
        action = slack_action(json.loads(json.dumps(body)))  # as it arrives: JSON
        assert action is not None and action.kind == kind_of(intent) and action.thread == SLACK_THREAD
        assert SEALER.open(action.token, action.thread, action.user, now=NOW) == intent


def _teams_click(data: dict[str, Any]) -> dict[str, Any]:
    activity = json.loads((FIXTURES / "teams" / "card_submit_next.json").read_text())
    activity["value"] = data
    return activity


@pytest.mark.parametrize("intent", BUTTON_INTENTS, ids=repr)
def test_every_intent_survives_a_teams_card_submit_from_a_button_or_a_choice_set(intent: Intent) -> None:
    key = thread_key(_teams_click({}))
    token = SEALER.seal(key, intent)
    button = Reply((Buttons((Button("Go", intent, token),)),))
    menu = Reply((Buttons((Select("Choose", (Option("it", intent, token),)),)),))
    (submit,) = teams_render.card(button)["actions"]
    (show,) = teams_render.card(menu)["actions"]
    (choice_set,) = show["card"]["body"]
    (inner,) = show["card"]["actions"]
    chosen = {**inner["data"], choice_set["id"]: choice_set["choices"][0]["value"]}  # Teams merges inputs
    for data in (submit["data"], chosen):
        action = teams_action(_teams_click(json.loads(json.dumps(data))))
        assert action is not None and action.kind == kind_of(intent) and action.thread == key
        assert SEALER.open(action.token, action.thread, action.user, now=NOW) == intent


# ---- file links ------------------------------------------------------------------------------------


@pytest.mark.parametrize("link", LINKS, ids=repr)
def test_a_file_link_opens_to_its_thread_and_link_until_it_expires(link: FileLink) -> None:
    token = SEALER.seal_link(SLACK_THREAD, link)
    assert SEALER.open_link(token, now=NOW) == (SLACK_THREAD, link)
    assert SEALER.open_link(token, now=link.expires + 1) is None
    assert SEALER.open(token, SLACK_THREAD, "UANY", now=NOW) is None  # a link is never a button
    for bit in range(0, _bits(token), 7):
        assert SEALER.open_link(_flip(token, bit), now=NOW) is None


def test_file_links_are_sealed_only_as_links() -> None:
    with pytest.raises(TypeError):
        SEALER.seal(SLACK_THREAD, LINKS[0])
