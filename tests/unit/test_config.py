"""Core settings from the environment: defaults that work with no account, errors that name the variable."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import AgentKind, ConfigError, Settings, env_flag, env_int, env_number


def test_defaults_work_on_a_fresh_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.home == tmp_path / ".datathread"
    assert (settings.retention, settings.page_size, settings.agent) == (timedelta(hours=6), 20, AgentKind.KERNEL)
    assert settings.kernel_memory_bytes == 4096 * 1024 * 1024 and settings.max_upload_bytes == 100_000_000
    assert not settings.allow_participants and settings.configured_secret is None
    assert (settings.workspaces, settings.datasets, settings.state_db) == (
        settings.home / "workspaces", settings.home / "datasets", settings.home / "state.sqlite3")


def test_every_knob_is_read(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "DATATHREAD_HOME": str(tmp_path), "DATATHREAD_RETENTION_HOURS": "0.5", "DATATHREAD_PAGE_SIZE": "100",
        "DATATHREAD_KERNEL_IDLE_SECONDS": "60", "DATATHREAD_RUN_TIMEOUT_SECONDS": "30",
        "DATATHREAD_KERNEL_MEMORY_MB": "512", "DATATHREAD_OUTPUT_CAP_CHARS": "1000",
        "DATATHREAD_MAX_UPLOAD_MB": "2.5", "DATATHREAD_ALLOW_PARTICIPANTS": "Yes",
    })
    assert settings.home == tmp_path and settings.retention == timedelta(minutes=30)
    assert (settings.page_size, settings.kernel_idle_timeout, settings.run_timeout) == (100, 60.0, 30.0)
    assert settings.kernel_memory_bytes == 512 * 1024 * 1024 and settings.output_cap_chars == 1000
    assert settings.max_upload_bytes == 2_500_000 and settings.allow_participants


def test_the_secret_never_shows_in_a_repr(tmp_path: Path) -> None:
    settings = Settings.from_env({"DATATHREAD_HOME": str(tmp_path), "DATATHREAD_SECRET": "hunter2-hunter2-hunter2"})
    assert "hunter2" not in repr(settings) and settings.secret() == b"hunter2-hunter2-hunter2"


def test_a_secret_is_made_once_per_home_and_kept_private(tmp_path: Path) -> None:
    settings = Settings.from_env({"DATATHREAD_HOME": str(tmp_path / "home")})
    first = settings.secret()
    assert len(first) == 64 and settings.secret() == first
    assert Settings.from_env({"DATATHREAD_HOME": str(tmp_path / "home")}).secret() == first
    assert (tmp_path / "home" / "secret").stat().st_mode & 0o777 == 0o600


def test_an_empty_secret_file_says_how_to_fix_it(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("")
    os.utime(tmp_path / "secret", (time.time() - 60, time.time() - 60))  # left empty by a crash, long ago
    with pytest.raises(ConfigError, match="DATATHREAD_SECRET"):
        Settings.from_env({"DATATHREAD_HOME": str(tmp_path)}).secret()


@pytest.mark.parametrize(("raw", "message"), [
    ("many", "must be a number, got 'many'"), ("0", "must be positive"), ("-3", "must be positive"),
])
def test_numbers_must_be_positive(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"X_SECONDS {message}"):
        env_number({"X_SECONDS": raw}, "X_SECONDS", 1)


def test_unset_or_blank_numbers_take_the_default() -> None:
    assert env_number({}, "X", 2.5) == 2.5 and env_number({"X": "  "}, "X", 2.5) == 2.5
    assert env_int({"X": ""}, "X", 7) == 7 and env_int({"X": " 9 "}, "X", 7) == 9


@pytest.mark.parametrize(("raw", "message"), [
    ("1.5", "must be a whole number"), ("0", "must be between 1 and 100"), ("101", "must be between 1 and 100"),
])
def test_whole_numbers_stay_in_their_range(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"DATATHREAD_PAGE_SIZE {message}"):
        Settings.from_env({"DATATHREAD_PAGE_SIZE": raw})
    with pytest.raises(ConfigError, match="at least 2"):
        env_int({"N": "1"}, "N", 5, low=2)


@pytest.mark.parametrize(("raw", "on"), [
    ("1", True), ("true", True), ("YES", True), (" on ", True), ("0", False), ("no", False), ("", False),
    ("enabled", False),
])
def test_flags(raw: str, on: bool) -> None:
    assert env_flag({"F": raw}, "F") is on
