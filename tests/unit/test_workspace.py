"""The conversation workspace: names from agents or users never resolve outside it, nothing is overwritten."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.workspace import CODE_DIR, PRIVATE_DIR, UnsafePath, Workspace, human_size, safe_filename


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws").ensure()


def test_names_inside_resolve_to_absolute_paths_inside(ws: Workspace) -> None:
    assert ws.resolve("a/b.csv") == ws.root / "a" / "b.csv"
    assert ws.resolve("sub/../c.csv") == ws.root / "c.csv"
    assert ws.resolve(ws.root / "d.csv") == ws.root / "d.csv"  # absolute, but inside
    assert ws.resolve(".") == ws.root
    assert ws.relative(ws.root / "x" / "y.png") == "x/y.png"


def test_a_sibling_folder_with_the_same_prefix_is_outside(ws: Workspace) -> None:
    with pytest.raises(UnsafePath, match="outside the workspace"):
        ws.resolve(str(ws.root) + "-other/file")


def test_a_symlinked_folder_pointing_out_is_refused(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (ws.root / "out").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(UnsafePath):
        ws.resolve("out/secret.txt")


async def test_writing_into_our_folder_drops_directories_from_the_name(ws: Workspace) -> None:
    path = await ws.write("../../etc/step 1.py", b"print(1)", folder=CODE_DIR)
    assert path == ws.root / CODE_DIR / "step_1.py" and path.read_bytes() == b"print(1)"
    with pytest.raises(UnsafePath):
        await ws.write("x.py", b"", folder="../elsewhere")


def test_unique_names_count_up_and_keep_the_extension(ws: Workspace) -> None:
    (ws.root / "data.tar.gz").write_bytes(b"")
    (ws.root / "data-2.tar.gz").write_bytes(b"")
    assert ws.unique("data.tar.gz") == ws.root / "data-3.tar.gz"


def test_listings_skip_our_private_folder_and_snapshots_see_changes(ws: Workspace) -> None:
    (ws.root / "a.csv").write_text("1")
    (ws.root / "sub").mkdir()
    (ws.root / "sub" / "b.csv").write_text("2")
    (ws.root / PRIVATE_DIR).mkdir()
    (ws.root / PRIVATE_DIR / "kernel.log").write_text("x")
    assert [f.name for f in ws.files()] == ["a.csv", "sub/b.csv"]
    before = ws.snapshot()
    (ws.root / "c.csv").write_text("3")
    (ws.root / "a.csv").write_text("10")  # a different size
    assert [f.name for f in ws.changed_since(before)] == ["a.csv", "c.csv"]


async def test_async_walks_match_the_sync_ones(ws: Workspace) -> None:
    (ws.root / "a.csv").write_text("1")
    before = await ws.take_snapshot()
    (ws.root / "b.csv").write_text("2")
    assert await ws.list_files() == ws.files()
    assert [f.name for f in await ws.changes_since(before)] == ["b.csv"]


def test_a_workspace_that_was_never_created_lists_nothing(tmp_path: Path) -> None:
    assert Workspace(tmp_path / "missing").files() == []


def test_a_touched_file_with_the_same_size_counts_as_changed(ws: Workspace) -> None:
    (ws.root / "a.csv").write_text("1")
    before = ws.snapshot()
    stat = (ws.root / "a.csv").stat()
    os.utime(ws.root / "a.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert [f.name for f in ws.changed_since(before)] == ["a.csv"]


@pytest.mark.parametrize(("name", "safe"), [
    ("report.csv", "report.csv"), ("a/b/c.png", "c.png"), ("Ünïcödé résumé.pdf", "Unicode_resume.pdf"),
    ("../..", "file"), ("", "file"), (".hidden", "hidden"), ("x" * 300 + ".csv", "x" * 120),
    ("漢字.csv", "csv"),
])
def test_safe_filenames_are_one_ascii_component(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


@pytest.mark.parametrize(("size", "shown"), [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 KB"), (1_500_000, "1.5 MB"), (3 * 10**9, "3.0 GB"),
    (5 * 10**12, "5000.0 GB"),
])
def test_sizes_use_decimal_units(size: int, shown: str) -> None:
    assert human_size(size) == shown
