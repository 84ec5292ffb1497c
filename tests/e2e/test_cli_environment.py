"""``datathread serve`` in a real process: what other processes of the same user can see of it."""

from __future__ import annotations

import pytest


@pytest.mark.e2e
def test_serve_hides_its_environment_from_same_user_processes() -> None:
    import subprocess
    import sys

    code = ("import ctypes, bot.cli as c; ok = c.hide_environment(); "
            "print(ok, ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))")  # PR_GET_DUMPABLE = 3
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "0"]
