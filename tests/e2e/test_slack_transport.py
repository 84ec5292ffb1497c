"""Slack's transport details the policy does not see: stream call sizes and the workspace budget."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.context import SlackContext
from adapters.slack.transport import SlackTransport
from bot.live_turn import LiveTurn
from bot.messages import ThreadKey
from bot.reply import Markdown, Reply, Status
from renderers.slack import MARKDOWN_BLOCK
from tests.fakes.slack_api import FakeSlack

pytestmark = pytest.mark.e2e

KEY = ThreadKey("slack", "T0001", "C0CHAN", "1700000000.000100")




async def test_a_final_delta_longer_than_one_call_is_streamed_whole_in_pieces(fake: FakeSlack) -> None:
    transport = SlackTransport(SlackContext(AsyncWebClient(token=fake.token, base_url=fake.api_url), fake.token),
                               KEY, "UALICE", interval=0.0)
    answer = " ".join(f"word{i}" for i in range(4000))  # ~35 KB: three calls' worth, within one stream
    state = [Reply((Status("Working…", "working"),))]
    live: LiveTurn[Any] = LiveTurn(transport, lambda: state[-1])
    await live.start()
    state.append(Reply((Status("Done", "done"), Markdown(answer))))
    await live.finish()
    (message,) = fake.thread(KEY.channel, KEY.thread)
    assert message.markdown == answer and not message.streaming
    sizes = [len(c.args.get("markdown_text", "").encode()) for c in fake.calls if c.method.endswith("Stream")]
    assert max(sizes) <= MARKDOWN_BLOCK
