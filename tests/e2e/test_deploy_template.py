"""``deploy/datathread.yaml`` passes ``cfn-lint`` (CloudFormation's own linter, with its resource specs)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_the_deployment_template_passes_cfn_lint() -> None:
    lint = shutil.which("cfn-lint") or str(Path(sys.executable).with_name("cfn-lint"))
    done = subprocess.run([lint, str(ROOT / "deploy" / "datathread.yaml")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
