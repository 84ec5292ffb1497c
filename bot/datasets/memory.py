"""New arrays in 4 KiB pages rather than transparent huge pages, for the process serving datasets.

numpy asks the kernel to back every array of 4 MiB or more with transparent huge pages
(``madvise(MADV_HUGEPAGE)``). On a VM whose host takes back the guest's free memory (virtio-balloon
free page reporting, as Firecracker and other microVM hosts have it), the free blocks reported to
the host are exactly huge-page-sized, so a new huge page is nearly always one the host must back
again. Measured on the benchmark's VM: a new 400 MB array took 1.9-2.2 s of page faults in 2 MiB
pages and 0.16-0.18 s in 4 KiB pages (0.04 s either way when the memory was freed just before); a
sort of 50M rows makes about 1 GB of new arrays, and its time swung from 4.8 s to 8.7 s on which
memory it got. Without such a host, huge pages save little for the store's access patterns
(sequential passes and bucket sorts in cache): under 5% of a 50M-row sort's CPU time here.
"""

from __future__ import annotations

import os

from numpy._core import multiarray


def prefer_small_pages() -> None:
    """Stop numpy advising huge pages for new arrays in this process, unless the operator chose with
    numpy's own switch, ``NUMPY_MADVISE_HUGEPAGE``. Process-wide; call once at start-up."""
    if "NUMPY_MADVISE_HUGEPAGE" not in os.environ:
        # Underscored but kept since numpy 1.20 (its release notes name it, with the variable above).
        multiarray._set_madvise_hugepage(False)  # type: ignore[attr-defined]
