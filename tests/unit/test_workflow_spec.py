"""Workflow files: a valid file becomes steps; every mistake is reported with its line and field."""

from __future__ import annotations

import pytest

from bot.workflows.spec import (
    InputRef,
    WorkflowError,
    parse_param_args,
    parse_workflow,
    substitute,
)

VALID = """\
name: weekly-sales
params: {region: EMEA}
max_parallel: 2
steps:
  - id: extract
    ask: "Load sales.csv and keep {region}."
    files: [sales.csv]
    outputs: [sales]
  - id: summarise
    inputs: [extract.sales]
    run: |
      summary = sales.groupby("product").sum()
      summary
    outputs: [summary]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(WorkflowError) as info:
        parse_workflow(text, "bad.yml")
    return [str(p) for p in info.value.problems]


def test_a_valid_file_becomes_its_steps_with_inputs_outputs_and_params() -> None:
    wf = parse_workflow(VALID, "weekly-sales.yml")
    assert (wf.name, wf.params, wf.max_parallel) == ("weekly-sales", {"region": "EMEA"}, 2)
    extract, summarise = wf.steps
    assert (extract.id, extract.files, extract.outputs, extract.line) == ("extract", ("sales.csv",), ("sales",), 5)
    assert summarise.inputs == (InputRef("extract", "sales"),) and summarise.needs == {"extract"}
    assert summarise.run is not None and summarise.run.startswith("summary = ")


def test_every_mistake_is_reported_at_once_with_its_line_and_field() -> None:
    text = """\
name: weekly sales
colour: blue
params: {region: EMEA}
steps:
  - id: extract
    ask: "Rows of {country}"
    outputs: [sales]
  - id: extract
    run: "x"
  - id: chart
    inputs: [extract.summary, nowhere.sales, plain]
  - ask: "no id"
    run: "and code"
"""
    found = problems(text)
    expected = [
        "line 1, name: use letters",
        "line 2, colour: is not a workflow field",
        "line 6, steps.extract.ask: {country} is not a declared parameter",
        "line 8, steps[1].id: another step is already called 'extract'",
        "line 10, steps.chart: needs exactly one of ask",
        "line 11, steps.chart.inputs: 'extract.summary': step 'extract' does not list 'summary'",
        "line 11, steps.chart.inputs: 'nowhere.sales': no earlier step is called 'nowhere'",
        "line 11, steps.chart.inputs: 'plain' must be written step.dataset",
        "line 12, steps[3].id: is missing",
        "line 12, steps[3]: needs exactly one of ask",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in found), (start, found)
    assert len(found) == len(expected), found


def test_broken_yaml_names_the_line_of_the_syntax_error() -> None:
    found = problems("name: x\nsteps:\n  - id: a\n    ask: [unclosed\n")
    assert len(found) == 1 and found[0].startswith("line 5, yaml:")


def test_a_workflow_needs_steps() -> None:
    assert problems("name: x\n") == ["line 1, steps: is missing: a workflow needs at least one step"]
    assert problems("")[0].startswith("line 1, steps: the file is empty")


def test_parameters_override_defaults_and_unknown_ones_are_refused() -> None:
    wf = parse_workflow(VALID)
    assert wf.resolve_params({"region": "APAC"}) == {"region": "APAC"}
    with pytest.raises(WorkflowError, match="unknown parameter 'colour'"):
        wf.resolve_params({"colour": "red"})
    assert substitute("rows of {region}, not {other} or {}", {"region": "APAC"}) == "rows of APAC, not {other} or {}"
    assert parse_param_args(["region=APAC", " year = 2026 "]) == {"region": "APAC", "year": "2026"}
    with pytest.raises(ValueError, match="name=value"):
        parse_param_args(["region"])
