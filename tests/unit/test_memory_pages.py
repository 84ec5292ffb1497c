"""The process serving datasets makes its large arrays in 4 KiB pages (a new 400 MB array in huge
pages took 2 s of page faults on a VM whose host reclaims free memory, 0.17 s in small ones), unless
the operator set numpy's own switch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from numpy._core import multiarray

from bot.datasets.memory import prefer_small_pages


@pytest.fixture
def numpy_advice() -> Iterator[None]:
    """numpy's huge-page advice, put back as it was after the test (it is process-wide)."""
    before = multiarray._set_madvise_hugepage(True)
    yield
    multiarray._set_madvise_hugepage(before)


@pytest.mark.usefixtures("numpy_advice")
def test_start_up_stops_numpy_advising_huge_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    prefer_small_pages()
    assert multiarray._set_madvise_hugepage(False) is False  # returns the setting it replaces


@pytest.mark.usefixtures("numpy_advice")
def test_an_operators_numpy_switch_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    prefer_small_pages()
    assert multiarray._set_madvise_hugepage(True) is True
