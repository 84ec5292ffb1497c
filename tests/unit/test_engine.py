"""Engine behaviour with a scripted agent, the real dataset store and SQLite state."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pandas as pd
import pytest

from bot import events as ev
from bot.composition import build_engine
from bot.config import Settings
from bot.engine import Engine
from bot.messages import ActionInvoked, IncomingMessage, RemoteFile, ThreadKey
from bot.reply import Button, Buttons, CodeBlock, Markdown, Notice, Select, Status, Table
from bot.transport import TransportError
from tests.fakes.scripted_agent import Raise, ScriptedAgent, Sleep, WriteFile
from tests.recording_transport import RecordingTransport
from tests.surfaces import RecordingSurface
from tests.waiting import until

T1 = ThreadKey("test", "team", "C1", "1.0")
T2 = ThreadKey("test", "team", "C1", "2.0")


def csv_bytes(rows: int) -> bytes:
    frame = pd.DataFrame({"id": [f"R{i:05d}" for i in range(1, rows + 1)], "value": [i * 1.5 for i in range(rows)]})
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode()


def make_engine(tmp_path: Path, agent: ScriptedAgent, **env: str) -> Engine:
    settings = Settings.from_env({"DATATHREAD_HOME": str(tmp_path), "DATATHREAD_PAGE_SIZE": "10", **env})
    return build_engine(settings, agent=agent, env={})


def msg(text: str, user: str = "U1", thread: ThreadKey = T1, **kw: object) -> IncomingMessage:
    return IncomingMessage(thread=thread, user=user, text=text, **kw)  # type: ignore[arg-type]


def buttons_of(reply_blocks: tuple[object, ...]) -> list[Button | Select]:
    return [item for b in reply_blocks if isinstance(b, Buttons) for item in b.items]


def next_button(call_reply: object) -> Button | None:
    return next((b for b in buttons_of(call_reply.blocks) if isinstance(b, Button) and "Next" in b.label), None)  # type: ignore[attr-defined]


async def test_turn_shows_progress_then_answer_and_clears_status(tmp_path: Path) -> None:
    agent = ScriptedAgent(lambda turn: [ev.Rationale("Looking at it. "), ev.CodeStarted("print(2)"),
                                        ev.CodeOutput("2\n"), ev.FinalText("The answer "), ev.FinalText("is 2.")])
    engine = make_engine(tmp_path, agent)
    surface = RecordingSurface()
    await engine.submit(msg("what is 1+1"), surface)
    final = surface.of("live.finish")[-1].reply
    assert final is not None
    assert isinstance(final.blocks[0], Status) and final.blocks[0].state == "done"
    texts = [b.text for b in final.blocks if isinstance(b, Markdown)]
    assert texts == ["Looking at it. ", "The answer is 2."]
    assert [c.text for c in surface.of("status")] == ["is working…", None]
    assert agent.turns[0].text == "what is 1+1"
    await engine.aclose()


async def test_files_uploaded_once_and_csv_becomes_pageable_dataset(tmp_path: Path) -> None:
    data = csv_bytes(25)
    agent = ScriptedAgent(lambda turn: [WriteFile("out.csv", data), ev.FinalText("done")])
    engine = make_engine(tmp_path, agent)
    surface = RecordingSurface()
    await engine.submit(msg("make a csv"), surface)
    assert surface.uploaded == {"out.csv": data}
    [page1] = surface.of("post")
    assert page1.reply is not None
    table = next(b for b in page1.reply.blocks if isinstance(b, Table))
    assert table.columns == ("id", "value") and table.rows[0][0] == "R00001" and len(table.rows) == 10

    # Walk every page with the Next button until there is none; rows never repeat or skip.
    seen = [r[0] for r in table.rows]
    current, guard = page1, 0
    while (button := next_button(current.reply)) is not None:
        guard += 1
        assert guard < 10, "paging did not end"
        await engine.act(ActionInvoked("page", button.token, "U1", T1, current.ref), surface)
        current = surface.of("update")[-1]
        assert current.ref == page1.ref  # the same message is updated in place
        seen += [r[0] for r in next(b for b in current.reply.blocks if isinstance(b, Table)).rows]  # type: ignore[union-attr]
    assert seen == [f"R{i:05d}" for i in range(1, 26)]
    await engine.aclose()


async def test_buttons_from_another_thread_user_or_forged_reveal_nothing(tmp_path: Path) -> None:
    agent = ScriptedAgent(lambda turn: [WriteFile("t.csv", csv_bytes(30))])
    engine = make_engine(tmp_path, agent)
    surface = RecordingSurface()
    await engine.submit(msg("go"), surface)
    token = next_button(surface.of("post")[0].reply).token  # type: ignore[union-attr]
    attempts = [
        ActionInvoked("page", token, "U2", T1),  # another user
        ActionInvoked("page", token, "U1", T2),  # replayed in another thread
        ActionInvoked("page", token[:-3] + "AAA", "U1", T1),  # tampered
        ActionInvoked("page", "garbage", "U1", T1),
    ]
    for action in attempts:
        await engine.act(action, surface)
    assert not surface.of("update") and len(surface.of("post")) == 1
    notes = surface.of("notify")
    assert len(notes) == 4 and all("no longer valid" in n.reply.summary for n in notes)  # type: ignore[union-attr]
    await engine.aclose()


async def test_typed_commands_page_sort_and_chart(tmp_path: Path) -> None:
    agent = ScriptedAgent(lambda turn: [WriteFile("t.csv", csv_bytes(25))])
    engine = make_engine(tmp_path, agent)
    surface = RecordingSurface()
    await engine.submit(msg("go"), surface)
    await engine.submit(msg("next"), surface)
    await engine.submit(msg("sort value desc"), surface)
    await engine.submit(msg("next"), surface)
    await engine.submit(msg("chart line id value"), surface)
    posts = [next(b for b in c.reply.blocks if isinstance(b, Table)) for c in surface.of("post")]  # type: ignore[union-attr]
    assert posts[1].rows[0][0] == "R00011"
    assert posts[2].rows[0][0] == "R00025"  # sorted desc by value
    assert posts[3].rows[0][0] == "R00015"  # page 2 of the sorted view
    chart = surface.of("upload")[-1].path
    assert chart is not None and chart.name == "t-line-value.png" and chart.read_bytes()[:4] == b"\x89PNG"
    assert len(agent.turns) == 1  # commands never reached the agent
    await engine.aclose()


async def test_one_turn_per_thread_in_order_threads_concurrent(tmp_path: Path) -> None:
    log: list[str] = []

    def script(turn: object) -> list[object]:
        text = turn.text  # type: ignore[attr-defined]
        log.append(f"start {text}")
        return [Sleep(0.3), ev.FinalText(text)]

    engine = make_engine(tmp_path, ScriptedAgent(script))  # type: ignore[arg-type]
    surface = RecordingSurface()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    futures = [engine.submit(msg("a1"), surface), engine.submit(msg("a2"), surface),
               engine.submit(msg("b1", thread=T2), surface)]
    await asyncio.gather(*futures)
    elapsed = loop.time() - t0
    assert log.index("start a1") < log.index("start a2")
    assert elapsed < 0.9  # b1 ran alongside a1/a2, not after them
    answers = [c.reply.summary for c in surface.of("live.finish")]  # type: ignore[union-attr]
    assert answers.index("a1") < answers.index("a2")
    await engine.aclose()


async def test_duplicates_dropped_also_after_restart(tmp_path: Path) -> None:
    agent = ScriptedAgent(lambda turn: [ev.FinalText("ok")])
    surface = RecordingSurface()
    engine = make_engine(tmp_path, agent)
    await engine.submit(msg("hi", event_id="C1:1.0"), surface)
    await engine.submit(msg("hi", event_id="C1:1.0"), surface)
    await engine.aclose()
    engine = make_engine(tmp_path, agent)
    await engine.submit(msg("hi", event_id="C1:1.0"), surface)
    assert len(agent.turns) == 1
    await engine.aclose()


async def test_owner_only_and_no_conversation_without_mention(tmp_path: Path) -> None:
    agent = ScriptedAgent(lambda turn: [ev.FinalText("ok")])
    engine = make_engine(tmp_path, agent)
    surface = RecordingSurface()
    await engine.submit(msg("chatter", mentioned=False), surface)
    assert not agent.turns and not surface.calls
    await engine.submit(msg("start"), surface)
    await engine.submit(msg("me too", user="U2"), surface)
    await engine.submit(msg("side talk", user="U2", mentioned=False), surface)
    assert len(agent.turns) == 1
    [note] = surface.of("notify")
    assert note.user == "U2" and "belongs to the person who started it" in note.reply.summary  # type: ignore[union-attr]
    await engine.aclose()
    engine = make_engine(tmp_path, agent, DATATHREAD_ALLOW_PARTICIPANTS="1")
    await engine.submit(msg("me too", user="U2"), surface)
    assert len(agent.turns) == 2
    await engine.aclose()


async def test_crash_and_failure_leave_thread_usable(tmp_path: Path) -> None:
    scripts = iter([[Raise(RuntimeError("bug"))], [ev.TurnFailed("The agent is busy; try again in a minute.")],
                    [ev.FinalText("fine")]])
    engine = make_engine(tmp_path, ScriptedAgent(lambda turn: next(scripts)))
    surface = RecordingSurface()
    for text in ("one", "two", "three"):
        await engine.submit(msg(text), surface)
    finals = [c.reply for c in surface.of("live.finish")]
    states = [f.blocks[0].state for f in finals]  # type: ignore[union-attr]
    assert states == ["failed", "failed", "done"]
    crash_note = next(b.text for b in finals[0].blocks if isinstance(b, Notice))  # type: ignore[union-attr]
    assert "went wrong" in crash_note and "bug" not in crash_note and "Traceback" not in crash_note
    assert surface.of("status")[-1].text is None
    await engine.aclose()


async def test_cancel_stops_turn_and_next_message_works(tmp_path: Path) -> None:
    scripts = iter([[ev.Rationale("thinking"), Sleep(30), ev.FinalText("never")], [ev.FinalText("next")]])
    engine = make_engine(tmp_path, ScriptedAgent(lambda turn: next(scripts)))
    surface = RecordingSurface()
    first = engine.submit(msg("slow"), surface)
    # The turn is running once its rationale is on screen.
    await until(lambda: any("thinking" in str(c.reply) for c in surface.calls if c.kind.startswith("live.")))
    assert engine.cancel(T1)
    await first
    await engine.submit(msg("again"), surface)
    finals = [c.reply.summary for c in surface.of("live.finish")]  # type: ignore[union-attr]
    assert finals == ["Stopped", "next"]
    await engine.aclose()


async def test_attachment_saved_in_workspace_and_given_to_agent(tmp_path: Path) -> None:
    agent = ScriptedAgent(lambda turn: [ev.FinalText("got it")])
    engine = make_engine(tmp_path, agent)
    surface = RecordingSurface(files={"https://files/1": b"a,b\n1,2\n"})
    files = (RemoteFile("../../etc/passwd data.csv", "https://files/1"), RemoteFile("secret.csv", "https://files/2"))
    await engine.submit(msg("look", files=files), surface)
    [turn] = agent.turns
    [att] = turn.attachments
    assert att.path.read_bytes() == b"a,b\n1,2\n" and att.path.parent == turn.workspace.root
    assert att.name == "../../etc/passwd data.csv"
    notes = [b.text for b in surface.of("live.finish")[-1].reply.blocks if isinstance(b, Notice)]  # type: ignore[union-attr]
    assert any("secret.csv" in n and "no access" in n for n in notes)
    await engine.aclose()


@pytest.mark.parametrize("text", ["sort the table by revenue please", "next steps?", "page one"])
async def test_prose_that_starts_like_a_command_goes_to_the_agent(tmp_path: Path, text: str) -> None:
    agent = ScriptedAgent(lambda turn: [ev.FinalText("ok")])
    engine = make_engine(tmp_path, agent)
    await engine.submit(msg(text), RecordingSurface())
    assert [t.text for t in agent.turns] == [text]
    await engine.aclose()


async def test_commands_act_on_a_named_dataset(tmp_path: Path) -> None:
    agent = ScriptedAgent(lambda turn: [WriteFile("first.csv", csv_bytes(30)), WriteFile("second.csv", csv_bytes(5))])
    engine = make_engine(tmp_path, agent)
    surface = RecordingSurface()
    await engine.submit(msg("go"), surface)
    await engine.submit(msg("next in first"), surface)
    await engine.submit(msg("sort value desc in FIRST"), surface)
    await engine.submit(msg("next in nope"), surface)
    titles = [c.reply.blocks[0].text for c in surface.of("post")]  # type: ignore[union-attr]
    assert titles[2].startswith("**first** · rows 11–20 of 30")
    assert titles[3].startswith("**first** · rows 1–10 of 30") and "sorted by value desc" in titles[3]
    assert 'No dataset "nope"' in surface.of("post")[-1].reply.summary  # type: ignore[union-attr]
    assert "first, second" in surface.of("post")[-1].reply.summary  # type: ignore[union-attr]
    assert len(agent.turns) == 1
    await engine.aclose()


async def test_long_code_is_shown_clipped_and_kept_whole_in_the_workspace(tmp_path: Path) -> None:
    code = "\n".join(f"x{i} = {i}" for i in range(100))
    agent = ScriptedAgent(lambda turn: [ev.CodeStarted(code), ev.FinalText("done")])
    engine = make_engine(tmp_path, agent)
    surface = RecordingSurface()
    await engine.submit(msg("go"), surface)
    final = surface.of("live.finish")[-1].reply
    shown = next(b for b in final.blocks if isinstance(b, CodeBlock))  # type: ignore[union-attr]
    assert shown.omitted == 60 and "x99" not in shown.text
    note = next(b.text for b in final.blocks if isinstance(b, Notice) and "Full code" in b.text)  # type: ignore[union-attr]
    path = agent.turns[0].workspace.root / note.split(": ", 1)[1].split(" ")[0]
    assert path.read_text() == code
    await engine.aclose()


async def test_a_live_message_that_cannot_start_still_ends_with_the_answer(tmp_path: Path) -> None:
    class NoLive(RecordingSurface):
        def live_transport(self) -> RecordingTransport:
            transport = super().live_transport()
            transport.fail["post"] = [TransportError("ratelimited")]  # the first message is refused
            return transport

    engine = make_engine(tmp_path, ScriptedAgent(lambda turn: [ev.FinalText("the answer")]))
    surface = NoLive()
    await engine.submit(msg("go"), surface)
    [post] = surface.of("live.finish")
    assert post.reply is not None and post.reply.summary == "the answer"
    assert [c.text for c in surface.of("status")] == ["is working…", None]
    await engine.aclose()
