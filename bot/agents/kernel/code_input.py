"""Which user messages are code for the local kernel, and which are prose (they get the help text).

Rules, in order:

1. Fenced blocks (```` ``` ```` or ```` ```python ````, ```` ```sh ```` for shell), with or without
   text around them: the blocks' code runs, joined in order. A block in another language
   (```` ```sql ````) is not run. A one-line ```` ```print(1)``` ```` counts too.
2. A message starting with ``%`` or ``!`` is IPython (a magic or a shell escape).
3. A message that parses as Python runs, unless it is *word-like*: only names joined by
   ``not`` / ``and`` / ``or`` / ``is`` / ``in`` ("thanks", "not sure", "this is it"), or a lone
   constant ("42"). A word-like message runs only if every name in it is a variable in the kernel
   (``df`` after ``df = ...`` displays it), which the caller checks with ``needs_names``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)
_ONE_LINE_FENCE = re.compile(r"```([^`\n]+)```")
_PYTHON_TAGS = frozenset({"", "python", "py", "python3", "ipython", "ipython3"})
_SHELL_TAGS = frozenset({"sh", "bash", "shell", "zsh", "console"})
_WORDY_NODES = (ast.Name, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare, ast.Is, ast.IsNot,
                ast.In, ast.NotIn, ast.Load)


@dataclass(frozen=True)
class CodeRequest:
    """Code to run. ``needs_names``: run only if all these are variables in the kernel."""

    code: str
    language: str = "python"
    needs_names: frozenset[str] = frozenset()


def code_in(text: str) -> CodeRequest | None:
    """The code a message asks to run, or ``None`` if it is not code (see the module rules)."""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(text)]
    if not blocks:
        blocks = [("", body) for body in _ONE_LINE_FENCE.findall(text)]
    if blocks:
        python = [body.strip("\n") for tag, body in blocks if tag in _PYTHON_TAGS]
        shell = [body.strip("\n") for tag, body in blocks if tag in _SHELL_TAGS]
        if python:
            return CodeRequest("\n\n".join(python))
        if shell:
            return CodeRequest("\n".join(shell), "shell")
        return None
    stripped = text.strip()
    if not stripped:
        return None
    if stripped[0] in "%!":
        return CodeRequest(stripped)
    try:
        tree = ast.parse(stripped)
    except (SyntaxError, ValueError):
        return None
    if not tree.body:
        return None  # only comments
    names = _word_like(tree)
    if names is None:
        return CodeRequest(stripped)
    if not names:
        return None  # a lone constant: nothing to run
    return CodeRequest(stripped, needs_names=frozenset(names))


def _word_like(tree: ast.Module) -> set[str] | None:
    """The names of a word-like single expression, or ``None`` if the message is real code."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        return None
    value = tree.body[0].value
    if isinstance(value, ast.Constant):
        return set()
    names: set[str] = set()
    for node in ast.walk(value):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif not isinstance(node, _WORDY_NODES) or (isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not)):
            return None
    return names
