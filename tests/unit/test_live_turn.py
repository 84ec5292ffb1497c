"""The live-turn policy (``bot.live_turn``), rule by rule, against a recording transport."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from typing import Any

from bot.intents import ListFiles
from bot.live_turn import LiveTurn
from bot.reply import Button, Buttons, CodeBlock, Markdown, Reply, Status, Step
from bot.transport import Limits, StreamRefused, TransportError
from tests.recording_transport import RecordingTransport

WORKING = Status("Working…", "working")
DONE = Status("Done in 3 s", "done")
FILES = Buttons((Button("Files", ListFiles(), "tok"),))
STREAMS = Limits(message_bytes=4000, edit_interval=0.0, can_stream=True, stream_bytes=4000)


class Turn:
    """A turn whose state the test sets; ``live`` shows it through ``transport``."""

    def __init__(self, transport: RecordingTransport, **options: Any) -> None:
        self.transport = transport
        self.state = Reply((WORKING,))
        self.live: LiveTurn[Any] = LiveTurn(transport, lambda: self.state, **options)

    async def show(self, *blocks: Any, status: Status = WORKING) -> None:
        self.state = Reply((status, *blocks), "summary")
        await self.live.changed()

    async def end(self, *blocks: Any) -> None:
        self.state = Reply((DONE, *blocks), "summary")
        await self.live.finish()


async def started(limits: Limits, **options: Any) -> Turn:
    turn = Turn(RecordingTransport(limits=limits), **options)
    await turn.live.start()
    return turn


async def test_streams_while_the_text_only_grows() -> None:
    turn = await started(STREAMS)
    await turn.show(Markdown("Loading."))
    await turn.show(Markdown("Loading. Grouping."))
    await turn.end(Markdown("Loading. Grouping. EMEA leads."))
    t = turn.transport
    assert [op.kind for op in t.ops] == ["open", "append", "append", "close"]
    assert [op.text for op in t.of("append")] == ["Loading.", " Grouping."]
    assert t.thread() == ["Loading. Grouping. EMEA leads."]


async def test_a_growing_code_output_stays_an_append() -> None:
    turn = await started(STREAMS)
    await turn.show(CodeBlock("count 3", "output"))
    await turn.show(CodeBlock("count 3\nmean 2", "output"))
    await turn.end(CodeBlock("count 3\nmean 2", "output"), Markdown("Done."))
    assert not turn.transport.of("edit") and "mean 2" in turn.transport.thread()[0]


async def test_switches_to_editing_when_the_text_shrinks() -> None:
    turn = await started(STREAMS)
    await turn.show(Markdown("A long first draft."))
    await turn.show(Markdown("Rewritten."))
    t = turn.transport
    [close] = t.of("close")
    assert t.of("edit")[-1].id == close.id  # the stream's own message is edited, no second message
    await turn.end(Markdown("Rewritten. Final."))
    assert len(t.thread()) == 1 and "Rewritten. Final." in t.thread()[0] and "Done in 3 s" in t.thread()[0]


async def test_switches_to_editing_past_the_stream_byte_limit() -> None:
    limits = Limits(message_bytes=4000, edit_interval=0.0, can_stream=True, stream_bytes=20)
    turn = await started(limits)
    await turn.show(Markdown("short"))
    await turn.show(Markdown("short and now much longer than twenty bytes"))
    assert turn.transport.of("close") and turn.transport.of("edit")
    assert "much longer" in turn.transport.thread()[0]


async def test_a_refused_stream_continues_in_its_own_message_when_it_stays() -> None:
    turn = await started(STREAMS)
    turn.transport.fail["append"] = [StreamRefused("message_not_in_streaming_state", message_id="1")]
    await turn.show(Markdown("Loading."))
    await turn.end(Markdown("Loading. Done."))
    t = turn.transport
    assert [op.kind for op in t.ops] == ["open", "append", "edit", "edit"]
    assert t.thread() == [t.render(turn.state, final=True)[0].text]


async def test_a_refused_stream_continues_in_a_new_message_when_it_is_gone() -> None:
    turn = await started(STREAMS)
    turn.transport.fail["append"] = [StreamRefused("ContentStreamNotAllowed")]
    await turn.show(Markdown("Loading."))
    await turn.end(Markdown("Loading. Done."))
    kinds = [op.kind for op in turn.transport.ops]
    assert kinds == ["open", "append", "post", "edit"] and "append" not in kinds[2:]


async def test_a_surface_that_cannot_stream_here_posts_and_edits() -> None:
    turn = await started(Limits(message_bytes=4000, edit_interval=0.0))
    await turn.show(Markdown("Loading."))
    await turn.end(Markdown("Loading. Done."))
    assert [op.kind for op in turn.transport.ops] == ["post", "edit", "edit"]


async def test_stop_pressed_during_a_stream_calls_the_stop_hook_and_the_turn_goes_on_showing() -> None:
    stopped = asyncio.Event()
    turn = await started(STREAMS, on_stop=stopped.set)
    turn.transport.fail["append"] = [StreamRefused("ContentStreamNotAllowed", stopped=True)]
    await turn.show(Markdown("Loading."))
    await asyncio.wait_for(stopped.wait(), 1.0)
    await turn.end(Markdown("Loading."), Markdown("Stopped."))
    assert "Stopped." in turn.transport.thread()[-1]


async def test_closes_a_stream_at_the_end_of_its_lifetime_even_without_changes() -> None:
    limits = Limits(message_bytes=4000, edit_interval=0.05, can_stream=True, stream_bytes=4000,
                    stream_lifetime=0.2, close_replaces=True)
    turn = await started(limits)
    await turn.show(Markdown("Reading 10 GB."))
    t = turn.transport
    close = await t.until("close")  # no further change: the deadline alone closes it
    assert "Reading 10 GB." in t.thread()[0] and "Working" in t.thread()[0]  # the close showed the reply
    await turn.end(Markdown("Reading 10 GB. Done."))
    assert t.ops[-1].kind == "edit" and t.ops[-1].id == close.id
    assert "Done." in t.thread()[0]


async def test_re_posts_a_vanished_message() -> None:
    turn = await started(Limits(message_bytes=4000, edit_interval=0.0))
    t = turn.transport
    [first] = t.screen
    t.gone.add(first)  # someone deleted the turn's message
    await turn.show(Markdown("Loading."))
    await turn.end(Markdown("Loading. Done."))
    assert t.thread() == [t.render(turn.state, final=True)[0].text]
    assert [op.kind for op in t.ops] == ["post", "edit", "post", "edit"]


async def test_paces_edits_to_the_interval_and_coalesces_changes_between_them() -> None:
    turn = await started(Limits(message_bytes=4000, edit_interval=0.2))
    for i in range(30):
        await turn.show(Markdown(f"step {i}"))
        await asyncio.sleep(0.02)
    await turn.end(Markdown("all steps"))
    edits = [op.at for op in turn.transport.of("edit")]
    assert 3 <= len(edits) <= 6  # 0.6 s of changes: about one edit per 0.2 s, not 30
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(edits))
    assert turn.transport.thread() == [turn.transport.render(turn.state, final=True)[0].text]


async def test_a_stream_append_goes_as_often_as_the_transport_allows() -> None:
    turn = await started(Limits(message_bytes=4000, edit_interval=5.0, can_stream=True, stream_bytes=4000))
    for i in range(5):
        await turn.show(Markdown("x" * (i + 1)))
        await asyncio.sleep(0.02)
    # Appends are not held to the 5 s edit interval: every change went out, in order.
    assert [op.text for op in turn.transport.of("append")] == ["x"] * 5


async def test_the_final_state_is_always_sent_even_after_failed_updates() -> None:
    turn = await started(Limits(message_bytes=4000, edit_interval=0.0))
    turn.transport.fail["edit"] = [TransportError("ratelimited"), TransportError("ratelimited")]
    await turn.show(Markdown("one"))
    await turn.show(Markdown("two"))
    await turn.end(Markdown("the answer"))
    assert "the answer" in turn.transport.thread()[0]


async def test_the_final_state_is_posted_when_the_first_message_never_made_it() -> None:
    turn = Turn(RecordingTransport(limits=Limits(message_bytes=4000, edit_interval=0.0)))
    turn.transport.fail["post"] = [TransportError("ratelimited")]
    await turn.live.start()
    await turn.end(Markdown("the answer"))
    assert turn.transport.thread() == [turn.transport.render(turn.state, final=True)[0].text]


async def test_a_long_final_state_is_split_into_several_messages_in_order() -> None:
    turn = await started(Limits(message_bytes=100, edit_interval=0.0))
    words = " ".join(f"word{i}" for i in range(80))
    await turn.end(Markdown(words))
    shown = turn.transport.thread()
    assert len(shown) >= 4 and all(len(m.encode()) <= 100 for m in shown)
    assert " ".join(" ".join(shown).split()).count("word79") == 1 and shown[0].find("word0") >= 0


async def test_a_stream_too_long_for_one_message_is_closed_and_split_at_the_end() -> None:
    limits = Limits(message_bytes=100, edit_interval=0.0, can_stream=True, stream_bytes=100, close_replaces=True)
    turn = await started(limits)
    await turn.show(Markdown("start"))
    await turn.end(Markdown(" ".join(f"word{i}" for i in range(80))))
    shown = turn.transport.thread()
    assert len(shown) >= 4 and "word79" in shown[-1]


async def test_end_buttons_come_with_the_final_state_where_the_surface_has_buttons() -> None:
    turn = await started(STREAMS, end_buttons=FILES)
    await turn.show(Markdown("Loading."))
    await turn.end(Markdown("Loading. Done."))
    assert turn.transport.of("close")  # a stream ends with the buttons attached, no extra message
    edited = await started(Limits(message_bytes=4000, edit_interval=0.0), end_buttons=FILES)
    await edited.end(Markdown("Done."))
    assert edited.transport.of("edit")[-1].message.buttons == ("Files",)  # type: ignore[union-attr]
    console = await started(Limits(message_bytes=4000, edit_interval=0.0, buttons=False), end_buttons=FILES)
    await console.end(Markdown("Done."))
    assert console.transport.of("edit")[-1].message.buttons == ()  # type: ignore[union-attr]


async def test_says_the_end_could_not_be_shown_and_where_the_results_are() -> None:
    turn = await started(Limits(message_bytes=4000, edit_interval=0.0), end_buttons=FILES)
    turn.transport.fail["edit"] = [TransportError("msg_too_long")]
    await turn.end(Markdown("a very long answer"))
    note = turn.transport.of("post")[-1].message
    assert note is not None and "would not show its result here (msg_too_long)" in note.text
    assert "Recorder" in note.text and note.buttons == ("Files",)


async def test_finish_never_raises_even_when_the_notice_fails_too() -> None:
    turn = await started(Limits(message_bytes=4000, edit_interval=0.0))
    turn.transport.fail["edit"] = [TransportError("msg_too_long")]
    turn.transport.fail["post"] = [TransportError("channel_not_found")]
    await turn.end(Markdown("answer"))  # logged, not raised
    assert turn.transport.ops[-1].kind == "post"


async def until(predicate: Any, limit: float = 2.0) -> None:
    """Wait (polling) until ``predicate()`` holds; fail after ``limit`` seconds."""
    deadline = asyncio.get_running_loop().time() + limit
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.005)


class BudgetBound(RecordingTransport):
    """A transport whose platform budget is exhausted: ``pace`` never returns."""

    waiting: asyncio.Event

    async def pace(self, kind: Any) -> None:
        self.waiting.set()
        await asyncio.Event().wait()


async def test_the_end_of_a_turn_does_not_wait_behind_the_live_budget() -> None:
    transport = BudgetBound(limits=Limits(message_bytes=4000, edit_interval=0.05))
    transport.waiting = asyncio.Event()
    turn = Turn(transport)
    await turn.live.start()
    await turn.show(Markdown("first"))  # a turn's first change does not wait for the budget
    await until(lambda: [op.kind for op in transport.ops] == ["post", "edit"])
    await turn.show(Markdown("second"))
    await asyncio.wait_for(transport.waiting.wait(), 1.0)  # its edit waits for a budget that never comes
    await asyncio.wait_for(turn.end(Markdown("the answer")), 1.0)  # the moot wait is dropped
    assert transport.thread() == [transport.render(turn.state, final=True)[0].text]
    assert [op.kind for op in transport.ops] == ["post", "edit", "edit"]


async def test_a_turns_first_progress_does_not_wait_behind_the_shared_budget() -> None:
    transport = BudgetBound(limits=Limits(message_bytes=4000, edit_interval=0.05))
    transport.waiting = asyncio.Event()
    turn = Turn(transport)
    await turn.live.start()
    await turn.show(Markdown("Loading the data."))
    await until(lambda: "Loading the data." in "".join(transport.thread()))
    assert not transport.waiting.is_set()  # shown without asking the exhausted budget
    await turn.end(Markdown("done"))


async def test_a_change_of_the_steps_alone_is_streamed_where_the_stream_shows_steps() -> None:
    turn = await started(replace(STREAMS, stream_steps=True))
    turn.state = Reply((WORKING, Markdown("Loading.")), "summary", (Step("step-1", "Loading.", "in_progress"),))
    await turn.live.changed()
    turn.state = Reply((WORKING, Markdown("Loading.")), "summary", (Step("step-1", "Loading.", "complete"),))
    await turn.live.changed()
    appends = turn.transport.of("append")
    assert [op.text for op in appends] == ["Loading.", ""]  # the second carries only the steps' change
