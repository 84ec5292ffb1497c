"""The bucketed sort of large key arrays gives exactly numpy's sort and stable argsort, whatever the
keys look like (uniform, skewed, heavily tied, all equal, past the sampled range), with bucket and chunk
sizes made small so a few thousand keys take the bucketed path."""

from __future__ import annotations

import numpy as np
import pytest

from bot.datasets import bucketsort

N = 20_000


@pytest.fixture(autouse=True, params=[1, 2, 3], ids=["1 thread", "2 threads", "3 threads"])
def small_buckets(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """78 buckets of ~256 keys; chunks not dividing N; shared among 1-3 threads."""
    monkeypatch.setattr(bucketsort, "THREADS", request.param)
    monkeypatch.setattr(bucketsort, "BUCKET_KEYS", 256)
    monkeypatch.setattr(bucketsort, "CHUNK_KEYS", 3_000)
    monkeypatch.setattr(bucketsort, "SAMPLE_KEYS", 500)


def key_sets() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    skewed = (rng.lognormal(3, 1, N) * 1e6).astype(np.uint64)
    extremes = rng.integers(0, 1000, N, dtype=np.uint64)
    extremes[::997] = np.uint64(2**64 - 1)  # a few keys far past the rest, mostly missed by the sample
    return {
        "uniform": rng.integers(0, 2**64 - 1, N, dtype=np.uint64, endpoint=True),
        "skewed": skewed,
        "tied": rng.integers(0, 12, N).astype(np.uint64) << np.uint64(50),
        "equal": np.full(N, 42, np.uint64),
        "extremes": extremes,
        "sorted": np.arange(N, dtype=np.uint64),
        "reversed": np.arange(N, dtype=np.uint64)[::-1].copy(),
    }


@pytest.mark.parametrize("name", list(key_sets()))
def test_bucketed_sort_equals_numpy_sort(name: str) -> None:
    keys = key_sets()[name]
    before = keys.copy()
    assert np.array_equal(bucketsort.sort(keys), np.sort(keys))
    assert np.array_equal(keys, before)  # the input is left as it was


def made_on_demand(keys: np.ndarray, tight: bool) -> bucketsort.Keys:
    """``keys`` as a sort of generated ones sees them: chunk by chunk, bounded exactly or loosely."""

    def fill(start: int, out: np.ndarray) -> None:
        out[:] = keys[start : start + len(out)]

    lo, hi = (int(keys.min()), int(keys.max())) if tight else (0, 2**64 - 1)
    return bucketsort.Keys(len(keys), lo, hi, fill, lambda step: keys[::step].copy())


@pytest.mark.parametrize("name", list(key_sets()))
@pytest.mark.parametrize("tight", [True, False], ids=["exact bounds", "loose bounds"])
def test_keys_made_on_demand_sort_as_the_array_would(name: str, tight: bool) -> None:
    keys = key_sets()[name]
    assert np.array_equal(bucketsort.sort(made_on_demand(keys, tight)), np.sort(keys))


@pytest.mark.parametrize("name", list(key_sets()))
def test_bucketed_argsort_keeps_equal_keys_in_row_order(name: str) -> None:
    keys = key_sets()[name]
    assert np.array_equal(bucketsort.stable_argsort(keys), np.argsort(keys, kind="stable"))


def test_small_arrays_take_numpy_sort_unchanged() -> None:
    keys = np.array([5, 1, 5, 0], np.uint64)  # under MIN_BUCKETS buckets' worth
    assert bucketsort.sort(keys).tolist() == [0, 1, 5, 5]
    assert bucketsort.stable_argsort(keys).tolist() == [3, 1, 0, 2]
    assert bucketsort.sort(np.zeros(0, np.uint64)).tolist() == []


def test_keys_sharing_their_leading_bits_are_bucketed_again_and_still_sort_exactly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Digit ids packed big-endian share most leading bits (few distinct 16-bit prefixes): the few
    oversized buckets they fill are split again, and the result is still numpy's."""
    rng = np.random.default_rng(5)
    digits = np.array([int.from_bytes(f"{v:08d}".encode(), "big") for v in rng.integers(0, 25_000_000, N)],
                      np.uint64)
    outlier = rng.integers(0, 10_000, N, dtype=np.uint64)
    outlier[123] = np.uint64(2**63)  # all other keys in the first bucket of the first split
    monkeypatch.setattr(bucketsort, "BUCKET_KEYS", 32)  # ~75 prefixes of 20K ids: ~270 keys each, 8 buckets' worth
    splits: list[int] = []
    split = bucketsort._Splitter.split

    def counted(self: bucketsort._Splitter, keys: np.ndarray, rows: bool, depth: int = 0,
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        splits.append(len(keys))
        return split(self, keys, rows, depth)

    monkeypatch.setattr(bucketsort._Splitter, "split", counted)
    for keys in (digits, outlier):
        assert np.array_equal(bucketsort.sort(keys), np.sort(keys))
        assert np.array_equal(bucketsort.stable_argsort(keys), np.argsort(keys, kind="stable"))
    assert len([n for n in splits if n < N - 1]) > 20  # oversized buckets were split again
