"""Contract: code a person sends reaches the agent byte for byte, on every surface.

Rule (hardening item 1): inside a code fence or inline code, every space, tab, blank line, trailing
space and non-ASCII character survives inbound translation. Each surface is driven through its real
inbound path (Slack: signed Events API request to the bolt app; Teams: an activity posted to
``/api/messages``; console: the line reader), encoded the way that platform encodes a message, and
the text the agent receives must yield exactly the code that was typed.
"""

from __future__ import annotations

import html
import io
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from adapters.console.chat import LineReader
from adapters.slack.fake_web_api import FakeSlack
from adapters.slack.harness import SlackBot, until
from adapters.slack.inbound import clean_text as slack_clean
from adapters.teams.inbound import clean_text as teams_clean
from bot import events as ev
from bot.agents.kernel.code_input import code_in
from bot.agents.scripted import ScriptedAgent
from bot.conversation import Turn
from tests.teams_harness import fixture, teams

#: Nested blocks, tabs, a blank line inside a function, a multi-line string whose inner spacing
#: matters, trailing spaces, characters Slack and HTML escape, and non-ASCII.
CODE = (
    "def describe(rows):\n"
    "    total = 0\n"
    "    for r in rows:\n"
    "        if r > 1 and r < 5:\n"
    "\t\ttotal += r  \n"
    "\n"
    "    note = '''first line\n"
    "    indented   twice\n"
    "\tand a tab'''\n"
    "    return f\"{total} — ünïcode & <ok>\", note\n"
    "\n"
    "print(describe([1, 2, 3]))"
)


def slack_text(code: str) -> str:
    """A Slack message with a fenced block, as the Events API sends it (``& < >`` escaped)."""
    escaped = code.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<@UBOT> please run\n```\n{escaped}\n```"


def teams_codeblock(code: str) -> str:
    """A Teams compose-box code block: ``<br>`` line breaks, indentation as ``&nbsp;`` runs."""
    lines = []
    for line in code.split("\n"):
        body = line.lstrip(" ")
        lead = len(line) - len(body)
        lines.append("&nbsp;" * lead + html.escape(body, quote=False).replace("  ", " &nbsp;"))
    return f'<codeblock class="Python"><code>{"<br>".join(lines)}</code></codeblock>'


def teams_pre(code: str) -> str:
    """Code pasted into Teams: a ``<pre>`` with real newlines and syntax-colouring spans."""
    coloured = html.escape(code, quote=False).replace("def ", '<span class="hljs-keyword">def</span> ')
    return f'<pre class="language-python"><code>{coloured}</code></pre>'


def received(text: str) -> str:
    request = code_in(text)
    assert request is not None, f"no code found in {text!r}"
    return request.code


# --- the pure translators, for every encoding each platform uses --------------------------------

def test_slack_translation_keeps_code_intact() -> None:
    assert received(slack_clean(slack_text(CODE), "UBOT")) == CODE


def test_slack_inline_code_keeps_its_spaces_while_prose_is_folded() -> None:
    text = slack_clean("<@UBOT>   what   does `a  =  1\t` do", "UBOT")
    assert text == "what does `a  =  1\t` do"


@pytest.mark.parametrize("encode", [teams_codeblock, teams_pre], ids=["codeblock", "pasted-pre"])
def test_teams_translation_keeps_code_intact(encode: Callable[[str], str]) -> None:
    activity = fixture("personal_message", text=f"<p>please run</p>{encode(CODE)}")
    text = teams_clean(activity)
    assert text.startswith("please run\n")
    assert received(text) == CODE


def test_teams_code_only_in_the_html_attachment_is_used() -> None:
    html_copy = {"contentType": "text/html", "content": f"<p>please run</p>{teams_codeblock(CODE)}"}
    activity = fixture("personal_message", text="please run def describe(rows): total = 0 ...",
                       attachments=[html_copy])
    assert received(teams_clean(activity)) == CODE


def test_teams_inline_code_keeps_its_spaces() -> None:
    activity = fixture("personal_message", text="<p>what does <code>a&nbsp; =\t1</code> do</p>")
    assert teams_clean(activity) == "what does `a  =\t1` do"


# --- each surface's real inbound path ------------------------------------------------------------

def echo(turn: Turn) -> list[ev.AgentEvent]:
    return [ev.FinalText("ok")]


async def via_slack(tmp_path: Path) -> str:
    fake = await FakeSlack().start()
    agent = ScriptedAgent(echo)
    bot = await SlackBot(fake, tmp_path, agent).start()
    try:
        event = {"type": "app_mention", "text": slack_text(CODE), "user": "UALICE", "ts": "1.000100",
                 "channel": "C0CHAN", "event_ts": "1.000100", "team": "T0001"}
        assert await bot.send(event, "Ev1") == 200
        await until(lambda: bool(agent.turns), what="the turn to reach the agent")
        return agent.turns[0].text
    finally:
        await bot.stop()
        await fake.close()


async def via_teams(tmp_path: Path) -> str:
    async with teams(tmp_path, echo) as harness:
        mention = "<at>datathread</at>"
        activity = fixture("channel_new_post_mention")
        activity["text"] = f"<p>{mention} please run</p>{teams_codeblock(CODE)}"
        response = await harness.post(activity)
        assert response.status in (200, 201, 202)
        await harness.until(lambda _: bool(harness.agent.turns))
        return harness.agent.turns[0].text


async def via_console(tmp_path: Path) -> str:
    reader = LineReader(io.StringIO(f"```python\n{CODE}\n```\n"), prompt=lambda _: None)
    text = await reader.message()
    assert text is not None
    return text


@pytest.mark.e2e
@pytest.mark.parametrize("surface", [via_slack, via_teams, via_console], ids=["slack", "teams", "console"])
async def test_every_surface_delivers_nested_code_byte_for_byte(
    surface: Callable[[Path], Awaitable[str]], tmp_path: Path
) -> None:
    assert received(await surface(tmp_path)) == CODE
