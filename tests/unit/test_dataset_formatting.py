"""Cell display strings and the string sort order: what every surface shows in a table, and in what order."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from bot.datasets.formatting import (
    MAX_CELL_CHARS,
    format_cell,
    format_datetime,
    format_float,
    format_rows,
    logical_type,
)
from bot.datasets.stringsort import string_order


@pytest.mark.parametrize(("value", "shown"), [
    (149998.5, "149998.5"), (0.1 + 0.2, "0.3"), (1.0, "1"), (-2.5e-7, "-2.5e-07"), (float("nan"), ""),
])
def test_floats_show_the_value_the_data_holds(value: float, shown: str) -> None:
    assert format_float(value) == shown


@pytest.mark.parametrize("values", [
    ["b", "a", "", None, "ab", "a\x00", "é", "Z", "a", None, "abcdefghijk", "abcdefghij", "abcdefghijl"],
    [f"C{i:07d}" for i in (5, 3, 9, 3, 1, 0)],  # equal lengths: the strided fast path
    [f"https://x.org/{'ab'[i % 2]}/{i % 7:04d}/item{'x' * (i % 3)}" for i in range(200)],  # long shared prefix
])
def test_string_order_is_arrows_order(values: list[str | None]) -> None:
    column = pa.chunked_array([pa.array(values[: len(values) // 2]), pa.array(values[len(values) // 2 :])])
    expected = pc.array_sort_indices(column, null_placement="at_end").to_numpy()
    assert np.array_equal(string_order(column), expected)


@pytest.mark.parametrize(("value", "shown"), [
    (float("inf"), "inf"), (float("-inf"), "-inf"), (0.0, "0"), (-0.0, "0"), (1e15, "1e+15"), (1e-5, "1e-05"),
    (20240105.0, "20240105"), (0.1 + 0.2 - 0.2, "0.1"), (-1.25, "-1.25"),
])
def test_floats_outside_the_plain_range_use_exponents_and_noise_is_dropped(value: float, shown: str) -> None:
    assert format_float(value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    (None, ""), (True, "true"), (False, "false"), (20240105, "20240105"), (1.5, "1.5"),
    (date(2024, 1, 5), "2024-01-05"), (b"\x00\x01\x02", "<3 bytes>"), ("tab\there\nnew", "tab here new"),
])
def test_each_cell_kind_has_one_display_string(value: object, shown: str) -> None:
    assert format_cell(value) == shown


def test_long_strings_are_cut_with_an_ellipsis_at_the_cell_limit() -> None:
    shown = format_cell("x" * 100)
    assert len(shown) == MAX_CELL_CHARS and shown.endswith("…")
    assert format_cell("y" * MAX_CELL_CHARS) == "y" * MAX_CELL_CHARS


@pytest.mark.parametrize(("value", "shown"), [
    (datetime(2024, 1, 5, 13, 45), "2024-01-05 13:45:00"),
    (datetime(2024, 1, 5, 13, 45, 0, 250000), "2024-01-05 13:45:00.25"),
    (datetime(2024, 1, 5, 13, 45, tzinfo=UTC), "2024-01-05 13:45:00Z"),
    (datetime(2024, 1, 5, 13, 45, tzinfo=timezone(timedelta(hours=5, minutes=30))), "2024-01-05 13:45:00+05:30"),
    (pd.Timestamp("2024-01-05 13:45:00.000000001"), "2024-01-05 13:45:00.000000001"),
])
def test_timestamps_are_iso_without_trailing_zeros(value: datetime, shown: str) -> None:
    assert format_datetime(value) == shown


@pytest.mark.parametrize(("arrow_type", "logical"), [
    (pa.int8(), "int"), (pa.uint64(), "int"), (pa.float32(), "float"), (pa.decimal128(10, 2), "float"),
    (pa.string(), "str"), (pa.large_string(), "str"), (pa.bool_(), "bool"), (pa.timestamp("ns"), "datetime"),
    (pa.date32(), "date"), (pa.dictionary(pa.int32(), pa.string()), "str"), (pa.list_(pa.int8()), "other"),
])
def test_logical_types_name_what_the_user_sees(arrow_type: pa.DataType, logical: str) -> None:
    assert logical_type(arrow_type) == logical


def test_rows_keep_column_order_and_show_missing_values_empty() -> None:
    table = pa.table({
        "id": [1, 2], "score": [0.5, None], "when": pa.array([0, None], pa.timestamp("ns")),
        "kind": pa.array(["a", "b"]).dictionary_encode(),
    })
    assert format_rows(table) == (("1", "0.5", "1970-01-01 00:00:00", "a"), ("2", "", "", "b"))


def test_a_table_without_columns_still_has_its_rows() -> None:
    assert format_rows(pa.table({"a": [1, 2, 3]}).drop(["a"])) == ((), (), ())


def test_string_order_of_a_single_chunk_and_all_missing_values() -> None:
    assert string_order(pa.array(["b", "a", "c"])).tolist() == [1, 0, 2]
    assert string_order(pa.chunked_array([pa.array([None, None], pa.string())])).tolist() == [0, 1]
    equal = pa.array(["same"] * 5)
    assert np.array_equal(string_order(equal), pc.array_sort_indices(equal).to_numpy())  # ties keep row order


def test_per_column_formatters_show_exactly_what_format_cell_shows() -> None:
    from bot.datasets.formatting import RowFormatter
    from bot.datasets.formatting import cells_one_by_one as cell_by_cell

    table = pa.table({
        "i": pa.array([1, None, -(2**63)], pa.int64()),
        "u": pa.array([2**64 - 1, 0, None], pa.uint64()),
        "f": pa.array([0.1 + 0.2 - 0.2, None, float("nan")]),
        "f32": pa.array([1.5, 1e-7, None], pa.float32()),
        "s": pa.array(["a\tb", None, "z" * 100]),
        "b": pa.array([True, None, False]),
        "ns": pa.array([0, None, 1_704_462_300_000_000_001], pa.timestamp("ns")),
        "us": pa.array([1_704_462_300_250_000, None, 0], pa.timestamp("us")),
        "s_ts": pa.array([1_704_462_300, None, -1], pa.timestamp("s")),
        "tz": pa.array([1_704_462_300_000_000, None, 0], pa.timestamp("us", tz="UTC")),
        "d": pa.array([19_000, None, 0], pa.date32()),
        "dict": pa.array(["x", None, "y"]).dictionary_encode(),
        "dec": pa.array([None, None, None], pa.decimal128(10, 2)),
    })
    # the cell-by-cell path (every value through format_cell) is the reference
    expected = tuple(zip(*[cell_by_cell(table.column(i)) for i in range(table.num_columns)], strict=True))
    assert RowFormatter(table.schema)(table) == expected
    assert RowFormatter(table.schema)(table)[0][6] == "1970-01-01 00:00:00"
    assert RowFormatter(table.schema)(table)[2][6] == "2024-01-05 13:45:00.000000001"
