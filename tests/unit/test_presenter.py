"""The presenter: a turn's events, a dataset page and a workspace listing as the neutral ``Reply``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import events as ev
from bot.datasets.model import ChartSpec, Column, DatasetMeta, Page, SortSpec
from bot.intent_tokens import IntentSealer
from bot.intents import ColumnOrder, Download, Intent, PostFile, ShowPage
from bot.messages import ThreadKey
from bot.presenter import (
    CODE_LINES,
    MAX_OPTIONS,
    chart_options,
    file_key,
    present_datasets,
    present_files,
    present_page,
    present_turn,
)
from bot.reply import Button, Buttons, CodeBlock, Markdown, Notice, Reply, Select, Status, Table
from bot.tokens import TokenSigner
from bot.workspace import WorkspaceFile

KEY = ThreadKey("slack", "T1", "C1", "1700000000.000100")
SEALER = IntentSealer(TokenSigner(b"k" * 32))


def seal(intent: Intent) -> str:
    return SEALER.seal(KEY, intent)
NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def meta(rows: int = 45, columns: tuple[Column, ...] = (Column("region", "str"), Column("revenue", "float")),
         name: str = "sales") -> DatasetMeta:
    return DatasetMeta("ds1", name, columns, rows, KEY, "U1", NOW, NOW + timedelta(hours=6))


def controls(reply: Reply) -> list[Button | Select]:
    return [i for b in reply.blocks if isinstance(b, Buttons) for i in b.items]


# -- turns ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "elapsed", "status"), [
    ("working", 2.25, Status("Working… 2.2 s", "working", 2.25)),
    ("working", None, Status("Working…", "working", None)),
    ("done", 75.0, Status("Done in 1 min 15 s", "done", 75.0)),
    ("done", None, Status("Done", "done", None)),
    ("failed", 3.0, Status("Failed", "failed", 3.0)),
    ("stopped", 3.0, Status("Stopped", "failed", 3.0)),
])
def test_the_status_line_says_where_the_turn_is(state: str, elapsed: float | None, status: Status) -> None:
    reply = present_turn([], state, elapsed)  # type: ignore[arg-type]
    assert reply.blocks == (status,) and reply.summary == status.text


def test_a_failure_is_shown_as_an_error_notice_after_what_was_done() -> None:
    reply = present_turn([ev.Rationale("Loading."), ev.TurnFailed("Bedrock is busy; try again in a minute.")],
                         "failed", 1.0)
    assert reply.blocks[1:] == (Markdown("Loading."), Notice("Bedrock is busy; try again in a minute.", "error"))


def test_datasets_are_announced_and_files_are_not_listed_twice(tmp_path: Path) -> None:
    reply = present_turn([ev.FileProduced(tmp_path / "a.csv", "a.csv", 10, "text/csv"),
                          ev.DatasetProduced(meta(1234))], "done", 1.0)
    assert reply.blocks[1:] == (Notice('✓ dataset "sales" · 1,234 rows × 2 columns'),)


def test_long_code_shows_its_first_lines_and_counts_the_rest() -> None:
    code = "\n".join(f"x{i} = {i}" for i in range(CODE_LINES + 7))
    [_, block] = present_turn([ev.CodeStarted(code)], "working").blocks
    assert isinstance(block, CodeBlock) and block.omitted == 7 and block.language == "python"
    assert block.text.splitlines() == code.splitlines()[:CODE_LINES]


def test_an_error_without_a_value_is_headed_by_its_name_alone() -> None:
    [_, block] = present_turn([ev.CodeError("KeyboardInterrupt", "", "")], "stopped").blocks
    assert block == CodeBlock("KeyboardInterrupt", "error")


def test_rationale_after_the_answer_started_does_not_join_the_answer() -> None:
    reply = present_turn([ev.FinalText("Part one. "), ev.Rationale("Checking."), ev.FinalText("Part two.")], "done")
    assert reply.blocks[1:] == (Markdown("Part one. Part two."), Markdown("Checking."))
    assert reply.summary == "Part one. Part two."


def test_the_summary_is_the_start_of_the_answer() -> None:
    assert present_turn([ev.FinalText("a" * 500)], "done").summary == "a" * 200


def test_output_blocks_follow_the_surface_s_size() -> None:
    text = "".join(f"row {i}\n" for i in range(500))
    [_, block] = present_turn([ev.CodeOutput(text)], "done", output_chars=400).blocks
    assert isinstance(block, CodeBlock) and len(block.text) <= 450 and block.text.endswith("row 499")


# -- dataset pages -------------------------------------------------------------------------------


def test_a_page_shows_its_range_columns_and_rows_as_a_table() -> None:
    rows = (("east", "1.5"), ("west", "2"))
    reply = present_page(Page(meta(45), 2, 2, 2, rows), seal)
    assert reply.blocks[0] == Markdown("**sales** · rows 3–4 of 45 · 2 columns")
    assert reply.blocks[1] == Table(("region", "revenue"), rows, (False, True))
    assert reply.summary == "sales: rows 3–4 of 45"


def test_an_empty_dataset_says_it_has_no_rows_and_offers_no_sort() -> None:
    reply = present_page(Page(meta(0), 1, 20, 0, ()), seal)
    assert reply.blocks[0] == Markdown("**sales** · no rows (0 of 0) · 2 columns")
    assert [i.label for i in controls(reply)] == ["Chart", "Download CSV", "Parquet"]


def test_a_sorted_page_says_so_and_its_page_buttons_keep_the_sort() -> None:
    page = Page(meta(45), 2, 20, 20, (("a", "1"),) * 20, SortSpec("revenue", descending=True))
    reply = present_page(page, seal)
    assert isinstance(reply.blocks[0], Markdown) and reply.blocks[0].text.endswith(" · sorted by revenue desc")
    prev, nxt = (i for i in controls(reply) if isinstance(i, Button) and i.kind == "page")
    assert prev.intent == ShowPage("ds1", 1, ColumnOrder(1, descending=True))
    assert nxt.intent == ShowPage("ds1", 3, ColumnOrder(1, descending=True))
    assert SEALER.open(nxt.token, KEY, "U1") == nxt.intent


def test_every_column_can_be_sorted_both_ways_and_downloads_name_their_format() -> None:
    reply = present_page(Page(meta(45), 1, 20, 0, (("a", "1"),) * 20), seal)
    sort = next(i for i in controls(reply) if isinstance(i, Select) and i.label == "Sort")
    assert [o.label for o in sort.options] == ["region ↑", "region ↓", "revenue ↑", "revenue ↓"]
    assert sort.options[3].intent == ShowPage("ds1", 1, ColumnOrder(1, descending=True))
    downloads = [i for i in controls(reply) if isinstance(i, Button) and i.kind == "download"]
    assert [b.intent for b in downloads] == [Download("ds1", "csv"), Download("ds1", "parquet")]


def test_chart_choices_suit_the_column_types() -> None:
    table = meta(10, (Column("day", "date"), Column("units", "int"), Column("price", "float"), Column("tag", "str")))
    assert chart_options(table) == [
        ChartSpec("line", "day", "units"), ChartSpec("line", "day", "price"),
        ChartSpec("hist", "units"), ChartSpec("hist", "price"),
        ChartSpec("scatter", "units", "price"),
        ChartSpec("box", "units"), ChartSpec("box", "price"),
    ]
    assert chart_options(meta(10, (Column("tag", "str"),))) == []


def test_menus_stay_within_the_option_limit() -> None:
    wide = meta(10, tuple(Column(f"c{i}", "float") for i in range(80)))
    reply = present_page(Page(wide, 1, 20, 0, (("1",) * 80,)), seal)
    assert all(len(i.options) <= MAX_OPTIONS for i in controls(reply) if isinstance(i, Select))


# -- listings ------------------------------------------------------------------------------------


def test_no_datasets_gets_a_hint_and_datasets_are_listed_with_size_and_expiry() -> None:
    assert present_datasets([]).blocks == (
        Notice("No datasets in this conversation yet. Display a DataFrame or write a CSV."),)
    reply = present_datasets([meta(1234), meta(5, name="costs")])
    assert reply.blocks == (Markdown("**Datasets**\n"
                                     "• **sales** — 1,234 rows × 2 columns · expires 15:30 UTC\n"
                                     "• **costs** — 5 rows × 2 columns · expires 15:30 UTC"),)
    assert reply.summary == "2 datasets"


def test_an_empty_workspace_says_so() -> None:
    assert present_files([], seal).blocks == (Notice("The workspace is empty."),)


def test_the_workspace_listing_has_sizes_and_a_post_button_per_file(tmp_path: Path) -> None:
    files = [WorkspaceFile(f"out/file{i}.csv", tmp_path / f"file{i}.csv", 2048 * (i + 1), 0) for i in range(45)]
    reply = present_files(files, seal)
    listing, buttons = reply.blocks
    assert isinstance(listing, Markdown) and isinstance(buttons, Buttons)
    lines = listing.text.splitlines()
    assert lines[0].startswith("**Workspace** · 45 files · ") and lines[1] == "• `out/file0.csv` — 2.0 KB"
    assert lines[-1] == "… and 5 more" and len(lines) == 1 + 40 + 1
    [menu] = buttons.items
    assert isinstance(menu, Select) and menu.kind == "file" and len(menu.options) == 45
    assert menu.options[7].intent == PostFile(file_key("out/file7.csv"))


def test_file_keys_are_short_and_stable() -> None:
    assert file_key("a" * 500) == file_key("a" * 500) and len(file_key("a" * 500)) == 16
    assert file_key("a.csv") != file_key("b.csv")
