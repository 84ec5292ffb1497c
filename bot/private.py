"""Everything datathread writes under its home is readable by its own OS user only.

Folders are created 0700 and files 0600 whatever the umask: the home holds other people's
conversations, uploads, datasets and the signing secret. (``datathread`` also sets a 077 umask
for itself and its kernels at start-up, so files user code writes are covered too.)
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents, each one 0700; existing folders are left as they are."""
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # created meanwhile by another task or process
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists (empty if new) with mode 0600, before a library opens it (SQLite,
    a log handler): such libraries create files with the umask's mode, and SQLite gives its
    journal files the mode of the database file."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (created or truncated) with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), FILE_MODE)
        f.write(data)


def make_private(path: Path) -> None:
    """Restrict a file or folder a library has just written (Arrow, NumPy) to its owner."""
    os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)
