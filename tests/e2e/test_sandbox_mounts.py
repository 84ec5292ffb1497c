"""The sandbox's mount order: what is bound stays visible inside, whatever folder it lives in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.agents.kernel.sandbox import SandboxPolicy, bwrap_args, python_roots


def _mounts(args: list[str]) -> list[tuple[str, str]]:
    """``(option, destination)`` of every mount option, in order."""
    out = []
    for i, arg in enumerate(args):
        if arg in ("--ro-bind", "--bind"):
            out.append((arg, args[i + 2]))
        elif arg in ("--tmpfs", "--dev", "--proc"):
            out.append((arg, args[i + 1]))
    return out


ROOT = Path(__file__).resolve().parents[2]
ARGS_OF_THIS_PYTHON = """
import json, sys
from pathlib import Path
from bot.agents.kernel.sandbox import SandboxPolicy, bwrap_args
tmp = Path(sys.argv[1])
print(json.dumps(bwrap_args(SandboxPolicy(hidden=(tmp / "home",)), tmp / "ws", tmp / "run", {})))
"""


@pytest.mark.e2e
def test_the_private_tmp_is_mounted_before_anything_bound_under_tmp(tmp_path: Path) -> None:
    """Rule: a later ``--tmpfs /tmp`` would hide a Python environment, a checkout's ``.venv``, the
    workspace or the kernel's socket folder that live under /tmp (CI clones there). The mounts are
    computed by a Python whose environment is itself under /tmp."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    out = subprocess.run([str(venv / "bin" / "python"), "-c", ARGS_OF_THIS_PYTHON, str(tmp_path)], check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)}).stdout
    mounts = _mounts(json.loads(out))
    assert ("--ro-bind", str(venv.resolve())) in mounts, "the environment under /tmp is bound"
    tmp_at = mounts.index(("--tmpfs", "/tmp"))
    under_tmp = [i for i, (option, dest) in enumerate(mounts)
                 if option in ("--ro-bind", "--bind") and dest.startswith("/tmp/")]
    assert under_tmp, "the runtime folder under /tmp is bound"
    assert all(i > tmp_at for i in under_tmp)


def test_every_python_root_is_bound_unless_the_system_folders_already_hold_it(tmp_path: Path) -> None:
    args = bwrap_args(SandboxPolicy(hidden=(tmp_path / "home",)), tmp_path / "ws", tmp_path / "run", {})
    bound = {dest for option, dest in _mounts(args) if option == "--ro-bind"}
    for root in python_roots():
        assert any(root == Path(b) or Path(b) in root.parents for b in bound), root
