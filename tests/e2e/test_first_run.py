"""A new user's first commands: doctor, serve without a platform's SDK, the help texts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # runs the CLI in subprocesses (doctor starts a kernel)

# Runs the CLI as if the named top-level packages were not installed (a lean `pip install datathread`).
WITHOUT = """
import sys
hidden = set(sys.argv[1].split(","))
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Hide())
from bot.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


def cli(tmp_path: Path, *args: str, hide: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "DATATHREAD_"))}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, hide, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**clean, "DATATHREAD_HOME": str(tmp_path / "home"), **env},
    )


def test_doctor_starts_a_kernel_and_says_which_surfaces_are_not_configured(tmp_path: Path) -> None:
    result = cli(tmp_path, "doctor", DATATHREAD_UNSAFE_KERNEL="1")
    out = result.stdout
    assert "[ok] kernel: a local Python kernel started and ran code" in out, out + result.stderr
    assert "[--] slack: not configured" in out and "[--] teams: not configured" in out
    assert "Everything looks good." not in out


def test_doctor_names_the_extra_a_configured_surface_is_missing(tmp_path: Path) -> None:
    result = cli(tmp_path, "doctor", hide="slack_bolt,slack_sdk", SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s",
                 DATATHREAD_UNSAFE_KERNEL="1")
    assert result.returncode == 1
    assert "[FAIL] slack: configured, but the Slack SDK is not installed" in result.stdout
    assert "pip install 'datathread[slack]'" in result.stdout


@pytest.mark.parametrize(("hide", "env", "extra"), [
    ("slack_bolt,slack_sdk", {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}, "slack"),
    ("botbuilder", {"MICROSOFT_APP_ID": "app"}, "teams"),
    ("boto3,botocore", {"DATATHREAD_AGENT": "bedrock-agents"}, "aws"),
])
def test_serve_says_which_extra_to_install_never_a_traceback(
    tmp_path: Path, hide: str, env: dict[str, str], extra: str
) -> None:
    result = cli(tmp_path, "serve", "--port", "0", hide=hide, **env)
    assert result.returncode == 2
    assert f"pip install 'datathread[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_console_runs_without_any_platform_sdk(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT, "slack_bolt,slack_sdk,botbuilder,boto3,botocore", "chat"],
        input="print(6 * 7)\n", capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "DATATHREAD_HOME": str(tmp_path / "home"), "DATATHREAD_AGENT": "kernel"},
    )
    assert result.returncode == 0, result.stderr
    assert "42" in result.stdout and "✓ done" in result.stdout


def test_serve_help_shows_descriptions_and_listens_locally_by_default(tmp_path: Path) -> None:
    out = cli(tmp_path, "serve", "--help").stdout
    assert "default 127.0.0.1" in out and "--all-interfaces" in out and "default 3000" in out
    package = cli(tmp_path, "teams-package", "--help").stdout
    assert "Upload an app" in package and "default datathread-teams.zip" in package
