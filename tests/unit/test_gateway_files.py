"""The gateway executor's pure parts: its settings, which files move, and names that cannot escape.

``kernel_side`` runs inside a gateway kernel; here it runs in the test process on a temporary folder
(its ``enter`` changes the cwd, which ``monkeypatch.chdir`` restores).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from bot.agents.gateway import kernel_side
from bot.agents.gateway.mirror import FileMirror
from bot.agents.gateway.shipping import SHIPPED, bootstrap_code
from bot.config import ConfigError, GatewaySettings, Settings
from bot.workspace import WorkspaceFile


def test_the_gateway_is_chosen_by_the_executor_variable_and_its_token_never_shows(tmp_path: Path) -> None:
    settings = Settings.from_env({"DATATHREAD_HOME": str(tmp_path), "DATATHREAD_EXECUTOR": "gateway",
                                  "JUPYTER_GATEWAY_URL": "https://gw.example:8888/", "JUPYTER_GATEWAY_AUTH_TOKEN": "s3",
                                  "JUPYTER_GATEWAY_KERNEL_NAME": "spark", "DATATHREAD_GATEWAY_FILE_MAX_MB": "5"})
    assert settings.gateway == GatewaySettings("https://gw.example:8888", "s3", "spark", 5_000_000)
    assert "s3" not in repr(settings)
    assert Settings.from_env({"DATATHREAD_HOME": str(tmp_path)}).gateway is None


def test_the_gateway_executor_without_a_url_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="JUPYTER_GATEWAY_URL"):
        Settings.from_env({"DATATHREAD_HOME": str(tmp_path), "DATATHREAD_EXECUTOR": "gateway"})


def _file(name: str, size: int, mtime: int = 1) -> WorkspaceFile:
    return WorkspaceFile(name, Path("/w") / name, size, mtime)


def test_new_and_changed_files_are_pushed_once_and_our_own_folders_never() -> None:
    mirror = FileMirror(max_bytes=100)
    files = [_file("data.csv", 10), _file("exports/big.csv", 10), _file("charts/c.png", 5), _file("code/1.py", 3)]
    assert [f.name for f in mirror.to_push(files)] == ["data.csv"]
    mirror.host["data.csv"] = (10, 1)
    assert mirror.to_push(files) == []
    assert [f.name for f in mirror.to_push([_file("data.csv", 10, mtime=2)])] == ["data.csv"]


def test_a_reattached_kernel_is_not_sent_files_it_already_has() -> None:
    mirror = FileMirror(max_bytes=100, kernel={"data.csv": (10, 99)})
    assert mirror.to_push([_file("data.csv", 10), _file("new.csv", 4)]) == [_file("new.csv", 4)]


def test_files_the_code_created_or_changed_are_pulled_and_the_rest_not() -> None:
    mirror = FileMirror(max_bytes=100, kernel={"a.csv": (1, 1), "b.csv": (2, 2)})
    assert mirror.to_pull({"a.csv": (1, 1), "b.csv": (3, 5), "c.png": (7, 7)}) == [("b.csv", 3), ("c.png", 7)]
    assert mirror.to_pull({"a.csv": (1, 1), "b.csv": (3, 5), "c.png": (7, 7)}) == []


def test_of_our_private_folder_only_hand_over_tables_come_back() -> None:
    mirror = FileMirror(max_bytes=100)
    listing = {".datathread/frames/t.arrow": (1, 1), ".datathread/secret": (1, 1),
               ".datathread/frames/x/y.arrow": (1, 1), ".datathread/frames/log.txt": (1, 1),
               "notes/.datathread/ok.txt": (1, 1)}
    assert [n for n, _ in mirror.to_pull(listing)] == [".datathread/frames/t.arrow", "notes/.datathread/ok.txt"]


def test_a_file_over_the_cap_is_reported_once_per_name_and_size() -> None:
    mirror = FileMirror(max_bytes=100)
    assert mirror.fits("small", 100) is True
    assert mirror.fits("big", 101) is False
    assert mirror.fits("big", 101) is None
    assert mirror.fits("big", 202) is False


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(kernel_side, "_root", None)
    return Path(kernel_side.enter("datathread/c1"))


def test_names_from_the_host_never_leave_the_conversation_folder(folder: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("no")
    os.symlink(tmp_path / "secret", folder / "link")
    for name in ("../../secret", "/etc/passwd", "link", "", "a/../../x"):
        with pytest.raises(ValueError):
            kernel_side.inside(name)
    with pytest.raises(ValueError):
        kernel_side.write_chunk("../escaped.txt", 0, base64.b64encode(b"x").decode())
    assert not (tmp_path / "datathread" / "escaped.txt").exists()


def test_bytes_round_trip_in_chunks_and_the_listing_skips_links_and_private_files(folder: Path) -> None:
    data = os.urandom(2500)
    for offset in range(0, len(data), 1000):
        kernel_side.write_chunk("sub/blob.bin", offset, base64.b64encode(data[offset:offset + 1000]).decode())
    back = b"".join(base64.b64decode(kernel_side.read_chunk("sub/blob.bin", o, 1000)) for o in range(0, 2500, 1000))
    assert back == data
    (folder / ".datathread" / "frames").mkdir(parents=True)
    (folder / ".datathread" / "frames" / "t.arrow").write_bytes(b"a")
    (folder / ".datathread" / "kernel.log").write_bytes(b"log")
    os.symlink(folder / "sub" / "blob.bin", folder / "alias.bin")
    assert sorted(kernel_side.manifest()) == [".datathread/frames/t.arrow", "sub/blob.bin"]
    kernel_side.remove([".datathread/frames/t.arrow", "../nope"])
    assert sorted(kernel_side.manifest()) == ["sub/blob.bin"]


def test_the_kernel_code_is_shipped_as_source_and_compiles() -> None:
    code = bootstrap_code("datathread/c1", 1 << 30)
    compile(code, "bootstrap", "exec")
    assert all(f"'{name}'" in code for name in SHIPPED)
