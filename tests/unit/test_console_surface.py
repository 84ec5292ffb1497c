"""The console prints a live turn once, in order, even when blocks grow or are re-clipped."""

from __future__ import annotations

import pytest

from adapters.console.surface import _unprinted


@pytest.mark.parametrize(("done", "lines", "new"), [
    ([], ["a", "b"], ["a", "b"]),  # first sight of a block
    (["a", "b"], ["a", "b", "c"], ["c"]),  # grew
    (["a", "partial"], ["a", "partial line", "d"], ["partial line", "d"]),  # its last line grew
    (["1", "2", "3", "4"], ["1", "… 2 lines not shown …", "4", "5", "6"], ["5", "6"]),  # re-clipped
    (["x", "w"], ["y", "… 9 lines not shown …", "z"], ["… 9 lines not shown …", "z"]),  # anchor gone
    (["a", "b"], ["a", "b"], []),  # nothing new
])
def test_unprinted_lines(done: list[str], lines: list[str], new: list[str]) -> None:
    assert _unprinted(done, lines) == new
