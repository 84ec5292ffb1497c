"""How a pandas column becomes an Arrow array, including columns Arrow has no type for.

One policy for the dataset store (``readers.frame_source``) and the kernel's hand-over file
(``bot.agents.kernel.startup``): a column Arrow converts as it is stays as it is; integers beyond
64 bits become decimals (or text past 38 digits); anything else that does not convert (complex
numbers, mixed objects, undecodable bytes) becomes text. Only a column whose values cannot even be
turned into text is dropped, and the caller names it to the user.
"""

from __future__ import annotations

import decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

#: What pyarrow (and the values' own ``__str__``) raise for a column it cannot take as it is.
CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError, TypeError,
                     ValueError, UnicodeError)
_DECIMAL = pa.decimal128(38, 0)


class Storage(Enum):
    """How a column is stored: as it is, as whole-number decimals, as text, or not at all."""

    AS_IS = "as is"
    DECIMAL = "decimal"
    TEXT = "text"
    DROP = "drop"


def choose(column: pd.Series) -> tuple[Storage, pa.Array | None]:
    """The storage for ``column`` (judged on these values) and the converted array (``None`` for DROP)."""
    try:
        return Storage.AS_IS, pa.Array.from_pandas(column)
    except CONVERSION_ERRORS:
        pass
    values = list(column)
    if all(_missing(v) or _whole(v) for v in values) and any(_whole(v) for v in values):
        try:
            return Storage.DECIMAL, _decimals(values)
        except (*CONVERSION_ERRORS, decimal.InvalidOperation):
            pass  # more than 38 digits: text keeps every digit
    try:
        return Storage.TEXT, _text(values)
    except Exception:  # a value whose __str__ fails: nothing of it can be shown
        return Storage.DROP, None


def convert(column: pd.Series, storage: Storage) -> pa.Array | None:
    """``column`` converted the way ``choose`` decided for an earlier part of the same column."""
    if storage is Storage.AS_IS:
        return pa.Array.from_pandas(column)
    if storage is Storage.DECIMAL:
        return _decimals(list(column))  # a later value past 38 digits raises: the caller reports it
    if storage is Storage.TEXT:
        return _text(list(column))
    return None


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        import pandas as pd

        flag = pd.isna(value)
    except Exception:
        return False
    return flag is True or (isinstance(flag, bool) and flag)


def _whole(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _decimals(values: list[Any]) -> pa.Array:
    return pa.array([None if _missing(v) else decimal.Decimal(int(v)) for v in values], _DECIMAL)


def _text(values: list[Any]) -> pa.Array:
    return pa.array([None if _missing(v) else str(v) for v in values], pa.string())
