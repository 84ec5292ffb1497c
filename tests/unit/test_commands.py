"""Typed commands parse to data without I/O; anything that does not look like a command stays prose."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.commands import (
    ChartOf,
    ColumnsTo,
    Command,
    DownloadAs,
    GoTo,
    ListDatasets,
    ListWorkflows,
    OnDataset,
    Relative,
    RunWorkflow,
    ShowHelp,
    SortBy,
    Step,
    parse_command,
    resolve,
)
from bot.datasets.model import Column, DatasetError, DatasetMeta
from bot.intents import ColumnOrder, Download, DrawChart, Intent, ListFiles, ShowPage
from bot.messages import ThreadKey


@pytest.mark.parametrize(("text", "command"), [
    ("next", OnDataset(Step(1))),
    ("  NEXT ", OnDataset(Step(1))),
    ("n", OnDataset(Step(1))),
    ("prev", OnDataset(Step(-1))),
    ("previous", OnDataset(Step(-1))),
    ("p", OnDataset(Step(-1))),
    ("page 3", OnDataset(GoTo(3))),
    ("page 0", OnDataset(GoTo(1))),
    ("sort revenue", OnDataset(SortBy("revenue"))),
    ("sort Revenue desc", OnDataset(SortBy("Revenue", True))),
    ("sort revenue DESCENDING", OnDataset(SortBy("revenue", True))),
    ("sort revenue asc", OnDataset(SortBy("revenue"))),
    ("chart line month revenue", OnDataset(ChartOf("line", "month", "revenue"))),
    ("chart HIST revenue", OnDataset(ChartOf("hist", "revenue"))),
    ("columns next", OnDataset(ColumnsTo(by=1))),
    ("cols prev", OnDataset(ColumnsTo(by=-1))),
    ("Columns 3 in wide", OnDataset(ColumnsTo(to=3), "wide")),
    ("download", OnDataset(DownloadAs("csv"))),
    ("download parquet", OnDataset(DownloadAs("parquet"))),
    ("next in sales", OnDataset(Step(1), "sales")),
    ("sort revenue desc in Sales", OnDataset(SortBy("revenue", True), "Sales")),
    ("download csv in q3", OnDataset(DownloadAs("csv"), "q3")),
    ("help", ShowHelp()),
    ("Files", ListFiles()),
    ("datasets", ListDatasets()),
    ("workflows", ListWorkflows()),
    ("run weekly-sales", RunWorkflow("weekly-sales")),
    ("Run weekly-sales region=APAC year=2026", RunWorkflow("weekly-sales", (("region", "APAC"), ("year", "2026")))),
])
def test_commands_parse_to_what_they_ask_for(text: str, command: Command) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize("text", [
    "", "   ", "sort the table by revenue", "next steps please", "page three", "page 1234567890",
    "chart pie revenue", "chart line a b c", "download xlsx", "help me", "files in sales", "what are the datasets?",
    "prev in", "sort", "n n", "run the numbers again", "run", "run weekly-sales please",
])
def test_prose_stays_prose_for_the_agent(text: str) -> None:
    assert parse_command(text) is None


def _meta() -> DatasetMeta:
    now = datetime.now(UTC)
    return DatasetMeta("ds1", "sales", (Column("region", "str"), Column("Revenue", "float")), 90,
                       ThreadKey("t", "t", "c", "1"), "U1", now, now + timedelta(hours=1))


@pytest.mark.parametrize(("action", "intent"), [
    (Step(1), ShowPage("ds1", 4, ColumnOrder(1, True))),
    (Step(-1), ShowPage("ds1", 2, ColumnOrder(1, True))),
    (GoTo(9), ShowPage("ds1", 9, ColumnOrder(1, True))),
    (SortBy("revenue"), ShowPage("ds1", 1, ColumnOrder(1))),
    (SortBy("Revenue", True), ShowPage("ds1", 1, ColumnOrder(1, True))),
    (ChartOf("bar", "REGION", "revenue"), DrawChart("ds1", "bar", 0, 1)),
    (DownloadAs("parquet"), Download("ds1", "parquet")),
])
def test_relative_commands_continue_from_the_last_view(action: Relative, intent: Intent) -> None:
    view = ShowPage("ds1", 3, ColumnOrder(1, True))
    assert resolve(action, view, _meta()) == intent


def test_column_commands_keep_the_rows_and_order_and_sorting_shows_the_sorted_column() -> None:
    wide = DatasetMeta("ds1", "wide", tuple(Column(f"c{i}", "int") for i in range(3001)), 90,
                       ThreadKey("t", "t", "c", "1"), "U1", _meta().created, _meta().expires)
    view = ShowPage("ds1", 3, ColumnOrder(1, True), 2)
    assert resolve(ColumnsTo(by=1), view, wide) == ShowPage("ds1", 3, ColumnOrder(1, True), 3)
    assert resolve(ColumnsTo(by=-1), view, wide) == ShowPage("ds1", 3, ColumnOrder(1, True), 1)
    assert resolve(ColumnsTo(by=-1), ShowPage("ds1", 3), wide) == ShowPage("ds1", 3)
    assert resolve(ColumnsTo(to=151), view, wide) == ShowPage("ds1", 3, ColumnOrder(1, True), 151)
    assert resolve(Step(1), view, wide) == ShowPage("ds1", 4, ColumnOrder(1, True), 2)
    assert resolve(SortBy("c2999"), view, wide) == ShowPage("ds1", 1, ColumnOrder(2999), 150)


def test_prev_on_the_first_page_stays_on_the_first_page() -> None:
    assert resolve(Step(-1), ShowPage("ds1", 1), _meta()) == ShowPage("ds1", 1)


def test_an_unknown_column_names_the_columns_there_are() -> None:
    with pytest.raises(DatasetError, match=re.escape("No column 'profit' in sales. Columns: region, Revenue")):
        resolve(SortBy("profit"), ShowPage("ds1", 1), _meta())
