"""A conversation's Converse history: validity, exchanges, trimming, repair of stored history, closing a turn."""

from __future__ import annotations

from typing import Any

from bot.agents.converse.history import (
    close_turn,
    estimate_tokens,
    exchanges,
    is_valid,
    sanitize,
    starts_exchange,
    trim,
)

Message = dict[str, Any]


def user(text: str) -> Message:
    return {"role": "user", "content": [{"text": text}]}


def assistant(text: str) -> Message:
    return {"role": "assistant", "content": [{"text": text}]}


def calls(*ids: str) -> Message:
    return {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": i, "name": "run_python", "input": {"code": "1"}}} for i in ids]}


def results(*ids: str) -> Message:
    return {"role": "user", "content": [{"toolResult": {"toolUseId": i, "content": [{"text": "1"}]}} for i in ids]}


def exchange(i: int, size: int = 0) -> list[Message]:
    return [user(f"question {i} " + "x" * size), calls(f"t{i}"), results(f"t{i}"), assistant(f"answer {i}")]


def test_a_complete_exchange_with_tool_calls_is_valid() -> None:
    assert is_valid(exchange(1) + exchange(2))
    assert is_valid([user("hi"), assistant("hello")])


def test_what_makes_history_invalid() -> None:
    assert not is_valid([])
    assert not is_valid([results("t1"), assistant("x")])  # starts with tool results
    assert not is_valid([user("hi")])  # ends with the user
    assert not is_valid([user("hi"), assistant("a"), assistant("b")])  # roles must alternate
    assert not is_valid([user("hi"), {"role": "assistant", "content": []}])  # empty blocks
    assert not is_valid([user("hi"), assistant("  ")])  # blank text
    assert not is_valid([user("q"), calls("t1", "t2"), results("t1"), assistant("a")])  # an unanswered call
    assert not is_valid([user("q"), calls("t1"), results("t9"), assistant("a")])  # a result for another call


def test_only_user_text_starts_an_exchange() -> None:
    assert starts_exchange(user("q")) and not starts_exchange(results("t1")) and not starts_exchange(assistant("a"))
    mixed = {"role": "user", "content": [{"text": "q"}, {"toolResult": {"toolUseId": "t1", "content": []}}]}
    assert not starts_exchange(mixed)


def test_exchanges_drop_leading_orphans() -> None:
    history = [results("t0"), assistant("stray"), *exchange(1), *exchange(2)]
    assert exchanges(history) == [exchange(1), exchange(2)]


def test_trimming_keeps_the_newest_exchanges_within_budget_and_always_the_last() -> None:
    history = [m for i in range(10) for m in exchange(i, size=400)]
    one = estimate_tokens(exchange(0, size=400))
    kept = trim(history, budget_tokens=3 * one)
    assert kept == [m for i in (7, 8, 9) for m in exchange(i, size=400)] and is_valid(kept)
    assert trim(history, budget_tokens=1) == exchange(9, size=400)


def test_stored_history_is_cut_before_the_newest_invalid_exchange() -> None:
    broken = [user("q5"), assistant("a"), assistant("b")]  # an old format: roles do not alternate
    stored = [*exchange(1), *broken, *exchange(2), *exchange(3)]
    assert sanitize(stored) == exchange(2) + exchange(3)
    assert sanitize([*exchange(1), *broken]) == []
    assert sanitize({"not": "a list"}) == [] and sanitize(None) == []
    assert sanitize(["junk", *exchange(4)]) == exchange(4)


def test_an_exchange_cut_after_a_tool_call_is_dropped_from_stored_history() -> None:
    stored = [*exchange(1), user("q5"), calls("t5"), *exchange(2)]
    assert is_valid(sanitize(stored))
    assert sanitize(stored) == exchange(2)  # the cut exchange goes, with everything older


def test_closing_a_turn_answers_pending_calls_and_says_why_it_stopped() -> None:
    closed = close_turn([user("q"), calls("t1", "t2")], "it was cancelled")
    assert is_valid(closed)
    assert [r["toolResult"]["status"] for r in closed[2]["content"]] == ["error", "error"]
    assert closed[2]["content"][0]["toolResult"]["content"] == [{"text": "Not run: it was cancelled"}]
    assert closed[-1] == {"role": "assistant", "content": [{"text": "(This turn stopped before an answer: it was "
                                                                    "cancelled)"}]}


def test_closing_a_turn_that_ended_with_text_appends_the_note_to_that_message() -> None:
    closed = close_turn([user("q"), assistant("half an answer")], "the service failed")
    assert is_valid(closed) and len(closed) == 2
    assert closed[-1]["content"][-1]["text"].startswith("(This turn stopped before an answer")
    assert close_turn([], "x") == []
    only_question = close_turn([user("q")], "x")
    assert is_valid(only_question) and len(only_question) == 2
