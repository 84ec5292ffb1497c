"""Pure translation of recorded Teams activities into the core's inbound model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.teams.inbound import reply_conversation_id, to_action, to_incoming

FIXTURES = Path(__file__).parents[1] / "fixtures" / "teams"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def test_personal_chat_is_one_resettable_thread_addressed_to_the_bot() -> None:
    message = to_incoming(load("personal_message"))
    assert message is not None
    assert message.text == "summarise sales.csv by region"
    assert message.thread.team == TENANT
    assert message.thread.thread == message.thread.channel == "a:1Pz8Y2personalchatid-Ada"
    assert message.mentioned and message.resettable
    assert message.event_id == "1732180443187"
    assert message.user == "29:1Ada-Lovelace-personal-id"


def test_channel_post_mention_and_entities_are_removed_and_the_chain_is_the_thread() -> None:
    post = to_incoming(load("channel_new_post_mention"))
    reply = to_incoming(load("channel_reply_in_chain"))
    assert post is not None and reply is not None
    assert post.text == "which region grew fastest & why?"
    assert post.mentioned and not post.resettable
    assert post.thread.channel == "19:4c1d3a2f9b8e4d7c@thread.tacv2"
    assert post.thread.thread == "1732180811554"
    assert reply.thread == post.thread  # a reply in the chain continues the same conversation
    assert reply.text == "now only for EMEA"


def test_a_channel_reply_without_a_mention_is_not_addressed_to_the_bot() -> None:
    raw = load("channel_reply_in_chain")
    raw["text"], raw["entities"] = "thanks, looks good", []
    message = to_incoming(raw)
    assert message is not None and not message.mentioned


def test_channel_replies_go_into_the_chain_even_when_the_id_lacks_the_suffix() -> None:
    raw = load("channel_new_post_mention")
    raw["conversation"]["id"] = "19:4c1d3a2f9b8e4d7c@thread.tacv2"
    assert reply_conversation_id(raw) == "19:4c1d3a2f9b8e4d7c@thread.tacv2;messageid=1732180811554"


def test_group_chat_is_one_thread() -> None:
    message = to_incoming(load("group_chat_mention"))
    assert message is not None
    assert message.thread.thread == "19:meeting_groupchat7d6e5f@thread.v2"
    assert message.text == "chart weekly signups" and message.mentioned and not message.resettable


def test_attachments_become_remote_files() -> None:
    shared = to_incoming(load("personal_file_download_info"))
    image = to_incoming(load("personal_inline_image"))
    assert shared is not None and image is not None
    assert [(f.name, f.url.split("?")[0]) for f in shared.files] == [
        ("sales.csv", "https://contoso-my.sharepoint.com/personal/ada_contoso_com/_layouts/15/download.aspx")
    ]
    assert len(image.files) == 1 and image.files[0].name == "image-1.png"
    assert image.files[0].url.endswith("/views/original")
    assert image.text == "what is in this chart?"


def test_a_card_submit_is_an_action_on_the_card_message() -> None:
    action = to_action(load("card_submit_next"))
    assert action is not None
    assert action.kind == "page" and action.token == "TOKEN"
    assert action.message is not None and action.message.id == "1700000000000105"
    assert to_incoming(load("card_submit_next")) is None


def test_a_choice_set_submit_carries_the_chosen_token() -> None:
    raw = load("card_submit_next")
    raw["value"] = {"datathread": "sort", "datathread_choice": "SORT-TOKEN"}
    action = to_action(raw)
    assert action is not None and action.kind == "sort" and action.token == "SORT-TOKEN"


def test_unknown_action_kinds_and_bot_echoes_are_ignored() -> None:
    raw = load("card_submit_next")
    raw["value"] = {"datathread": "rm -rf", "token": "x"}
    assert to_action(raw) is None
    echo = load("personal_message")
    echo["from"] = echo["recipient"]
    assert to_incoming(echo) is None
