"""Scratch arrays of large sorts, kept a short while after use so the next sort reuses their pages.

numpy hands a large array's memory back to the kernel the moment it is freed (glibc maps each one
anew). On a VM whose balloon reports free pages to the host (the benchmark machine: virtio-balloon
with free page reporting, as on Firecracker-style hosts) the first touch of new memory then costs
2-10 ms per MB: a 50M-row sort spent 2.0-2.5 s of its 5.6-6.8 s in page faults on its two 400 MB
scratch arrays, against 0.05 s at 10M rows (whose memory the previous run had just freed).
Allocators such as jemalloc keep freed pages for seconds for the same reason; this pool does it for
the sorts' scratch arrays alone: for ``KEEP_SECONDS`` after the last one is given back, at most
``MAX_BYTES`` of them. Results are never pool memory: a lease ends with its block.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

#: Seconds kept buffers live after the last lease ends (the sorts of one user's clicks reuse them).
KEEP_SECONDS = 30.0
#: Bytes of buffers kept at most (the largest are kept): two 50M-row scratch arrays.
MAX_BYTES = 1 << 30


class ScratchPool:
    """Reusable uninitialised buffers. Safe to share between threads: a buffer is leased to one block
    at a time, and two sorts at once simply get two sets."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS, max_bytes: int = MAX_BYTES) -> None:
        self.keep_seconds = keep_seconds
        self.max_bytes = max_bytes
        self._kept: list[np.ndarray] = []  # uint8 buffers, none leased
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self.released = threading.Event()  # set whenever the kept buffers are let go (tests wait on it)

    @contextmanager
    def arrays(self, *shapes: tuple[int, np.dtype[Any] | type]) -> Iterator[list[np.ndarray]]:
        """Uninitialised 1-D arrays of the given ``(length, dtype)``, made from kept buffers when one
        is large enough. They are the pool's again when the block ends: no view of them may outlive it."""
        sizes = [n * np.dtype(dtype).itemsize for n, dtype in shapes]
        leased = [self._take(size) for size in sizes]
        try:
            yield [buf[:size].view(dtype) for buf, size, (_, dtype) in zip(leased, sizes, shapes, strict=True)]
        finally:
            self._give_back(leased)

    @property
    def kept_bytes(self) -> int:
        with self._lock:
            return sum(len(b) for b in self._kept)

    def clear(self) -> None:
        """Let go of every kept buffer (numpy returns their memory to the kernel)."""
        with self._lock:
            self._kept.clear()
        self.released.set()

    def _take(self, size: int) -> np.ndarray:
        with self._lock:
            fitting = [i for i, b in enumerate(self._kept) if len(b) >= size]
            if fitting:
                # The smallest that fits: larger ones stay for larger sorts.
                return self._kept.pop(min(fitting, key=lambda i: len(self._kept[i])))
        return np.empty(max(size, 1), np.uint8)

    def _give_back(self, buffers: list[np.ndarray]) -> None:
        with self._lock:
            kept = sorted([*self._kept, *buffers], key=len, reverse=True)
            self._kept = []
            total = 0
            for buf in kept:
                if total + len(buf) <= self.max_bytes:
                    self._kept.append(buf)
                    total += len(buf)
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.keep_seconds, self.clear)
            self._timer.daemon = True
            self.released.clear()
            self._timer.start()


#: The process's pool, used by the sorts in ``tablefile`` and ``stringsort``.
SCRATCH = ScratchPool()
