"""Agent steps: grouping a turn's blocks (``bot.steps``) and Slack's task chunks (``renderers.slack_steps``)."""

from __future__ import annotations

from bot import events as ev
from bot.presenter import present_turn
from bot.reply import Markdown, Step
from bot.steps import without_steps
from renderers.slack_steps import step_chunks, task_chunk, text_beside_steps

TWO_STEPS: list[ev.AgentEvent] = [
    ev.Rationale("Loading the file.\nIt is the one you attached."),
    ev.CodeStarted("df = load()"),
    ev.CodeOutput("200\n"),
    ev.Rationale("Grouping by region."),
    ev.CodeStarted("df.groupby('region')"),
    ev.CodeError("KeyError", "'region'", "KeyError: 'region'"),
    ev.FinalText("No region column."),
]


def test_rationale_is_the_title_code_the_details_output_the_output_and_an_error_marks_the_step() -> None:
    steps = present_turn(TWO_STEPS, "done").steps
    assert [(s.title, s.status) for s in steps] == [("Loading the file.", "complete"),
                                                   ("Grouping by region.", "error")]
    assert steps[0].details == "Loading the file.\nIt is the one you attached.\n\ndf = load()"
    assert steps[0].output == "200"
    assert "KeyError: 'region'" in steps[1].output


def test_while_the_turn_runs_its_last_step_is_in_progress_and_a_stopped_turn_ends_it_in_error() -> None:
    running = present_turn(TWO_STEPS[:3], "working").steps
    assert [s.status for s in running] == ["in_progress"]
    stopped = present_turn(TWO_STEPS[:4], "stopped").steps
    assert [s.status for s in stopped] == ["complete", "error"]


def test_the_answer_is_never_a_step_and_stays_in_the_text_beside_the_steps() -> None:
    reply = present_turn(TWO_STEPS, "done")
    rest = without_steps(reply)
    assert [b.text for b in rest.blocks if isinstance(b, Markdown)] == ["No region column."]
    text = text_beside_steps(reply, final=True)
    assert "No region column." in text and "df = load()" not in text and "Grouping" not in text


def test_code_without_a_rationale_is_a_step_with_a_plain_title() -> None:
    [step] = present_turn([ev.CodeStarted("print(1)"), ev.CodeOutput("1\n")], "done").steps
    assert (step.title, step.details, step.output) == ("Running code", "print(1)", "1")


def test_a_multi_step_turn_has_one_plan_title_and_unchanged_steps_are_not_sent_again() -> None:
    steps = present_turn(TWO_STEPS, "done").steps
    first = step_chunks(steps[:1], {})
    assert [c["type"] for c in first] == ["task_update"]  # one step: no plan
    sent = {s.id: s for s in steps[:1]}
    second = step_chunks(steps, sent)
    assert second[0] == {"type": "plan_update", "title": "2 steps"}
    assert [c["id"] for c in second[1:]] == ["step-2"]
    assert step_chunks(steps, {s.id: s for s in steps}) == []


def test_task_text_is_escaped_so_a_step_never_notifies_anyone() -> None:
    chunk = task_chunk(Step("step-1", "Ping <!channel>", "complete", "x = '<@U123>'", "a & b"))
    assert chunk == {"type": "task_update", "id": "step-1", "title": "Ping &lt;!channel&gt;", "status": "complete",
                     "details": "x = '&lt;@U123&gt;'", "output": "a &amp; b"}
