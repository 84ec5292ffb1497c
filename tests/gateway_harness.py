"""A real Jupyter Enterprise Gateway on a free loopback port, with local process kernels.

Enterprise Gateway pins old Jupyter libraries (3.3.0: ``jupyter_client<7``, ``jupyter_server<2``,
``pyzmq<25``), so it cannot share our virtualenv: it gets its own, built once from PyPI under
``~/.cache/datathread-tests/`` in a folder named after the requirement and reused afterwards (as in
a deployment, where the gateway is a separate service). Its one kernel spec runs ipykernel in the
Python running the tests, which has pandas, pyarrow and matplotlib.

As root (CI), the gateway refuses kernels for root (``EG_UNAUTHORIZED_USERS`` defaults to ``root``):
the test gateway names another user as the only unauthorized one. It requires a token, so the
token is checked on REST calls and on the WebSocket.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.local_server import free_port

REQUIREMENT = "jupyter_enterprise_gateway==3.3.0"
TOKEN = "test-gateway-token"
KERNEL_NAME = "datathread-test"
_START_SECONDS = 60.0


@dataclass(frozen=True)
class Gateway:
    """A running test gateway: its address, its token, and where its kernels start (their cwd)."""

    url: str
    token: str
    kernel_name: str
    kernels_cwd: Path

    def env(self) -> dict[str, str]:
        """The environment that points datathread at this gateway."""
        return {"DATATHREAD_EXECUTOR": "gateway", "JUPYTER_GATEWAY_URL": self.url,
                "JUPYTER_GATEWAY_AUTH_TOKEN": self.token, "JUPYTER_GATEWAY_KERNEL_NAME": self.kernel_name}

    def api(self, method: str, path: str) -> tuple[int, object]:
        """Call the gateway's REST API directly (as an operator or its culler would)."""
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read()
                return response.status, json.loads(body) if body else None
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except urllib.error.URLError:  # not listening (yet)
            return 0, None


def gateway_python() -> Path:
    """The Python of a virtualenv with Enterprise Gateway, built on first use; ``pytest.skip`` (saying
    why) when it cannot be installed, e.g. with no package registry."""
    key = hashlib.sha256(f"{REQUIREMENT} {sys.version_info[:2]}".encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "datathread-tests"
    venv = cache / f"jeg-{key}"
    python = venv / "bin" / "python"
    if (venv / "ready").exists():
        return python
    building = cache / f"jeg-{key}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    steps = [[sys.executable, "-m", "venv", str(building)],
             [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet", REQUIREMENT]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            pytest.skip(f"Jupyter Enterprise Gateway could not be installed ({REQUIREMENT}): "
                        f"{(done.stderr or done.stdout).strip()[-300:]}")
    (building / "ready").write_text(REQUIREMENT)
    try:
        building.rename(venv)  # a venv's scripts name their folder: rename before anything uses it
    except OSError:  # built meanwhile by another run: use that one
        shutil.rmtree(building, ignore_errors=True)
    # Scripts inside point at the building folder; run the gateway as a module of this Python instead.
    return python


def _kernel_spec(root: Path) -> Path:
    spec = root / "share" / "jupyter" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "display_name": "datathread test kernel", "language": "python", "interrupt_mode": "signal",
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "metadata": {"process_proxy": {"class_name":
                                       "enterprise_gateway.services.processproxies.processproxy.LocalProcessProxy"}},
    }))
    return root / "share" / "jupyter"


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """An Enterprise Gateway process for the whole test session."""
    python = gateway_python()
    root = tmp_path_factory.mktemp("gateway")
    kernels_cwd = root / "kernels"
    kernels_cwd.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "KERNEL_", "EG_", "PYTHON"))}
    env |= {"JUPYTER_PATH": str(_kernel_spec(root)), "JUPYTER_DATA_DIR": str(root / "data"),
            "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "EG_UNAUTHORIZED_USERS": "datathread-unauthorized",
            "EG_AUTH_TOKEN": TOKEN}
    log = (root / "gateway.log").open("wb")
    process = subprocess.Popen(
        [str(python), "-m", "enterprise_gateway", "--ip=127.0.0.1", f"--port={port}", "--port_retries=0",
         f"--EnterpriseGatewayApp.allowed_kernels={KERNEL_NAME}",
         f"--EnterpriseGatewayApp.default_kernel_name={KERNEL_NAME}"],
        cwd=kernels_cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    gw = Gateway(f"http://127.0.0.1:{port}", TOKEN, KERNEL_NAME, kernels_cwd)
    try:
        deadline = time.monotonic() + _START_SECONDS
        while gw.api("GET", "/api/kernelspecs")[0] != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise AssertionError("the gateway did not start:\n" + (root / "gateway.log").read_text()[-3000:])
            time.sleep(0.1)
        yield gw
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
