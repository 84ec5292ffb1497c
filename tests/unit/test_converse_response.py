"""One Converse model response assembled from stream events: what is shown when, and what goes into history."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from bot.agents.converse.response import NO_ANSWER, More, Response, Shown, parse_input
from bot.events import FinalText, Rationale


def text(index: int, piece: str) -> dict[str, Any]:
    return {"contentBlockDelta": {"contentBlockIndex": index, "delta": {"text": piece}}}


def reasoning(index: int, piece: str = "", signature: str | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"text": piece} if piece else {}
    if signature:
        part["signature"] = signature
    return {"contentBlockDelta": {"contentBlockIndex": index, "delta": {"reasoningContent": part}}}


def tool_start(index: int, tool_id: str = "t1", name: str = "run_python") -> dict[str, Any]:
    start = {"toolUse": {"toolUseId": tool_id, "name": name}}
    return {"contentBlockStart": {"contentBlockIndex": index, "start": start}}


def tool_input(index: int, piece: str) -> dict[str, Any]:
    return {"contentBlockDelta": {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}}}


def stop(reason: str) -> dict[str, Any]:
    return {"messageStop": {"stopReason": reason}}


def play(response: Response, events: Iterable[Mapping[str, Any]]) -> list[Shown]:
    shown: list[Shown] = []
    for event in events:
        shown += list(response.feed(event))
    return shown + list(response.end())


def fresh(holdback: int = 20, answered: bool = False) -> Response:
    return Response(holdback=holdback, answered=[answered])


def test_a_short_answer_is_held_back_and_shown_whole_at_the_end() -> None:
    response = fresh()
    assert play(response, [text(0, "Hi "), text(0, "there."), stop("end_turn")]) == [FinalText("Hi there.")]


def test_a_long_answer_streams_once_past_the_holdback() -> None:
    response = fresh(holdback=10)
    shown = play(response, [text(0, "The total is "), text(0, "8, "), text(0, "as computed."), stop("end_turn")])
    assert shown == [FinalText("The total is "), FinalText("8, "), FinalText("as computed.")]


def test_text_before_a_tool_call_is_rationale_not_answer() -> None:
    response = fresh(holdback=1000)
    shown = play(response, [text(0, "I'll load the file first."), tool_start(1), tool_input(1, '{"code": '),
                            tool_input(1, '"print(1)"}'), {"contentBlockStop": {"contentBlockIndex": 1}},
                            stop("tool_use")])
    assert shown == [Rationale("I'll load the file first.")]
    assert response.tool_uses()[0]["parsed"] == {"code": "print(1)"}


def test_held_text_after_a_tool_call_is_rationale_when_the_model_stops_for_the_tool() -> None:
    response = fresh(holdback=1000)
    shown = play(response, [tool_start(0), tool_input(0, "{}"), text(1, "Running it now."), stop("tool_use")])
    assert shown == [Rationale("Running it now.")]
    assert response.tool_uses()[0]["parsed"] == {}  # parsed at the end even without a block stop


def test_reasoning_streams_as_one_rationale_paragraph_per_block() -> None:
    response = fresh()
    shown = play(response, [reasoning(0, "  First I "), reasoning(0, "check."), reasoning(0, signature="sig"),
                            text(1, "Done."), stop("end_turn")])
    assert shown == [Rationale("First I "), More("check."), FinalText("Done.")]


def test_a_second_answer_part_in_one_turn_starts_after_a_blank_line() -> None:
    answered = [False]
    first, second = Response(5, answered), Response(5, answered)
    assert play(first, [text(0, "Part one."), stop("end_turn")]) == [FinalText("Part one.")]
    assert play(second, [text(0, "Part two."), stop("end_turn")]) == [FinalText("\n\nPart two.")]


def test_history_keeps_signed_reasoning_text_and_parsed_tool_inputs() -> None:
    response = fresh(holdback=1000)
    play(response, [reasoning(0, "why", "sig-9"), reasoning(1, "unsigned"), text(2, "   "), text(3, "Looking."),
                    tool_start(4, "t9"), tool_input(4, '{"code": "1"}'), stop("tool_use")])
    assert response.message(with_tools=True) == {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "why", "signature": "sig-9"}}},
        {"text": "Looking."},
        {"toolUse": {"toolUseId": "t9", "name": "run_python", "input": {"code": "1"}}},
    ]}
    assert response.message(with_tools=False)["content"][-1] == {"text": "Looking."}


def test_a_response_with_nothing_to_keep_says_there_was_no_answer() -> None:
    assert fresh().message(with_tools=True) == {"role": "assistant", "content": [{"text": NO_ANSWER}]}


def test_a_reset_forgets_a_response_that_failed_before_anything_was_shown() -> None:
    response = fresh(holdback=1000)
    list(response.feed(text(0, "partial")))
    list(response.feed(stop("end_turn")))
    response.reset()
    assert (response.blocks, response.stop_reason, response.text()) == ({}, None, "")
    assert play(response, [text(0, "again"), stop("end_turn")]) == [FinalText("again")]


@pytest.mark.parametrize(("raw", "parsed"), [
    ("", {}), ("  ", {}), ('{"code": "x"}', {"code": "x"}), ("[1, 2]", None), ('{"code": ', None),
])
def test_tool_input_is_an_object_or_none(raw: str, parsed: dict[str, Any] | None) -> None:
    assert parse_input(raw) == parsed
