"""Workflow files: YAML parsed into frozen dataclasses, every mistake named with its line and field.

The YAML is read as a node tree (``yaml.compose``) rather than plain values so each problem can
point at the line it is on; all problems of a file are collected and reported together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

#: Step ids, dataset names and parameter names: they become file names and Python variables.
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: A workflow's own name: it is a file name and a command argument.
WORKFLOW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
STEP_KEYS = frozenset({"id", "ask", "run", "files", "inputs", "outputs"})
TOP_KEYS = frozenset({"name", "params", "steps", "max_parallel"})


@dataclass(frozen=True)
class Problem:
    """One mistake in a workflow file: where (line, 1-based; 0 when unknown) and which field."""

    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "the file"
        return f"{where}, {self.field}: {self.message}"


class WorkflowError(ValueError):
    """A workflow file (or the parameters given for a run) has mistakes; ``problems`` names each one."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join([f"{source}: {len(self.problems)} problem(s)"] + [f"  {p}" for p in problems]))


@dataclass(frozen=True)
class InputRef:
    """A dataset an earlier step publishes: ``step.dataset``."""

    step: str
    dataset: str

    def __str__(self) -> str:
        return f"{self.step}.{self.dataset}"


@dataclass(frozen=True)
class Step:
    """One step: exactly one of ``ask`` (a prompt, ``{param}`` substituted) or ``run`` (code)."""

    id: str
    ask: str | None = None
    run: str | None = None
    files: tuple[str, ...] = ()
    inputs: tuple[InputRef, ...] = ()
    outputs: tuple[str, ...] = ()
    line: int = 0

    @property
    def needs(self) -> frozenset[str]:
        """The ids of the steps this one reads from."""
        return frozenset(i.step for i in self.inputs)


@dataclass(frozen=True)
class Workflow:
    name: str
    steps: tuple[Step, ...]
    params: Mapping[str, str] = field(default_factory=dict)
    max_parallel: int = 1

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def resolve_params(self, given: Mapping[str, str]) -> dict[str, str]:
        """The defaults overridden by ``given``; raises ``WorkflowError`` for an undeclared name."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            declared = ", ".join(sorted(self.params)) or "none"
            raise WorkflowError(self.name, [Problem(0, "params", f"unknown parameter '{n}' (declared: {declared})")
                                            for n in unknown])
        return {**self.params, **given}


def substitute(text: str, params: Mapping[str, str]) -> str:
    """``text`` with each ``{name}`` of a declared parameter replaced; other braces stay as they are."""
    return PLACEHOLDER.sub(lambda m: params.get(m.group(1), m.group(0)), text)


def parse_param_args(items: Sequence[str]) -> dict[str, str]:
    """``k=v`` strings (command line, chat words, Workflow Builder lines) as a dict; raises ``ValueError``."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not NAME.match(key):
            raise ValueError(f"parameters are written name=value, not {item!r}")
        out[key] = value.strip()
    return out


def load_workflow(path: Path) -> Workflow:
    """Read and validate a workflow file; raises ``WorkflowError`` (or ``OSError`` if unreadable)."""
    return parse_workflow(path.read_text(encoding="utf-8"), str(path))


def parse_workflow(text: str, source: str = "workflow") -> Workflow:
    """Validate ``text``; raises ``WorkflowError`` listing every problem with its line and field."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise WorkflowError(source, [Problem(line, "yaml", str(exc.problem or exc))]) from None
    except yaml.YAMLError as exc:
        raise WorkflowError(source, [Problem(0, "yaml", str(exc))]) from None
    return _Parser(source).workflow(root)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def problem(self, node: yaml.Node | None, field_name: str, message: str) -> None:
        self.problems.append(Problem(_line(node) if node is not None else 0, field_name, message))

    def mapping(self, node: yaml.Node, field_name: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, field_name, "must be a mapping of name: value")
            return None
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                self.problem(key, field_name, "keys must be plain names")
                continue
            if key.value in out:
                self.problem(key, f"{field_name}.{key.value}", "is given twice")
            out[str(key.value)] = (key, value)
        return out

    def text(self, node: yaml.Node, field_name: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.problem(node, field_name, "must be text")
            return None
        return str(node.value)

    def names(self, node: yaml.Node, field_name: str) -> list[tuple[yaml.Node, str]]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, field_name, "must be a list, e.g. [a, b]")
            return []
        out: list[tuple[yaml.Node, str]] = []
        for item in node.value:
            value = self.text(item, field_name)
            if value is not None:
                out.append((item, value))
        return out

    def workflow(self, root: yaml.Node | None) -> Workflow:
        if root is None:
            raise WorkflowError(self.source, [Problem(1, "steps", "the file is empty")])
        top = self.mapping(root, "workflow") or {}
        for key, (knode, _) in top.items():
            if key not in TOP_KEYS:
                self.problem(knode, key, f"is not a workflow field (known: {', '.join(sorted(TOP_KEYS))})")
        name = Path(self.source).stem
        if "name" in top:
            given = self.text(top["name"][1], "name")
            if given is not None and not WORKFLOW_NAME.match(given):
                self.problem(top["name"][1], "name", "use letters, digits, - and _ only")
            name = given or name
        params = self.params(top["params"][1]) if "params" in top else {}
        max_parallel = 1
        if "max_parallel" in top:
            node = top["max_parallel"][1]
            value = self.text(node, "max_parallel")
            if value is not None and (not value.isdigit() or not 1 <= int(value) <= 16):
                self.problem(node, "max_parallel", "must be a whole number from 1 to 16")
            elif value is not None:
                max_parallel = int(value)
        steps: list[Step] = []
        if "steps" not in top:
            self.problem(root, "steps", "is missing: a workflow needs at least one step")
        elif not isinstance(top["steps"][1], yaml.SequenceNode) or not top["steps"][1].value:
            self.problem(top["steps"][1], "steps", "must be a non-empty list of steps")
        else:
            for i, node in enumerate(top["steps"][1].value):
                step = self.step(node, i, steps, params)
                if step is not None:
                    steps.append(step)
        if self.problems:
            raise WorkflowError(self.source, self.problems)
        return Workflow(name, tuple(steps), params, max_parallel)

    def params(self, node: yaml.Node) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, (knode, vnode) in (self.mapping(node, "params") or {}).items():
            if not NAME.match(key):
                self.problem(knode, f"params.{key}", "parameter names are letters, digits and _")
            value = self.text(vnode, f"params.{key}")
            if value is not None:
                out[key] = value
        return out

    def step(self, node: yaml.Node, index: int, earlier: list[Step], params: Mapping[str, str]) -> Step | None:
        where = f"steps[{index}]"
        fields = self.mapping(node, where)
        if fields is None:
            return None
        for key, (knode, _) in fields.items():
            if key not in STEP_KEYS:
                self.problem(knode, f"{where}.{key}", f"is not a step field (known: {', '.join(sorted(STEP_KEYS))})")
        step_id = None
        if "id" not in fields:
            self.problem(node, f"{where}.id", "is missing")
        else:
            step_id = self.text(fields["id"][1], f"{where}.id")
            if step_id is not None and not NAME.match(step_id):
                self.problem(fields["id"][1], f"{where}.id", "use letters, digits and _ (it names files and variables)")
            elif step_id is not None and any(s.id == step_id for s in earlier):
                self.problem(fields["id"][1], f"{where}.id", f"another step is already called '{step_id}'")
            if step_id is not None:
                where = f"steps.{step_id}"
        ask = self.text(fields["ask"][1], f"{where}.ask") if "ask" in fields else None
        run = self.text(fields["run"][1], f"{where}.run") if "run" in fields else None
        if ("ask" in fields) == ("run" in fields):
            self.problem(node, where, "needs exactly one of ask (a prompt) or run (code)")
        if ask is not None:
            for m in PLACEHOLDER.finditer(ask):
                if m.group(1) not in params:
                    self.problem(fields["ask"][1], f"{where}.ask",
                                 f"{{{m.group(1)}}} is not a declared parameter (add it under params)")
        files: list[str] = []
        for fnode, name in (self.names(fields["files"][1], f"{where}.files") if "files" in fields else []):
            if Path(name).is_absolute() or ".." in Path(name).parts:
                self.problem(fnode, f"{where}.files", f"'{name}' must be a path inside the folder the run starts from")
            else:
                files.append(name)
        outputs: list[str] = []
        for onode, name in self.names(fields["outputs"][1], f"{where}.outputs") if "outputs" in fields else []:
            if not NAME.match(name):
                self.problem(onode, f"{where}.outputs", f"'{name}' is not a dataset name (letters, digits, _)")
            else:
                outputs.append(name)
        inputs: list[InputRef] = []
        for inode, ref in self.names(fields["inputs"][1], f"{where}.inputs") if "inputs" in fields else []:
            source, dot, dataset = ref.partition(".")
            producer = next((s for s in earlier if s.id == source), None)
            if not dot or not NAME.match(source) or not NAME.match(dataset):
                self.problem(inode, f"{where}.inputs", f"'{ref}' must be written step.dataset")
            elif producer is None:
                self.problem(inode, f"{where}.inputs", f"'{ref}': no earlier step is called '{source}'")
            elif dataset not in producer.outputs:
                self.problem(inode, f"{where}.inputs",
                             f"'{ref}': step '{source}' does not list '{dataset}' in its outputs")
            elif any(i.dataset == dataset for i in inputs):
                self.problem(inode, f"{where}.inputs", f"two inputs are called '{dataset}'")
            else:
                inputs.append(InputRef(source, dataset))
        if step_id is None:
            return None
        return Step(step_id, ask, run, tuple(files), tuple(inputs), tuple(outputs), _line(node))
