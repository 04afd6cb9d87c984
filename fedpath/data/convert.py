"""Text records -> canonical events, validated one whole chunk at a time.

Each check is one vectorized pyarrow/numpy pass over a column (pyarrow's string kernels are many
times faster than pandas' here, and a 10M-row log runs every one of them). A record that fails
is quarantined with the first failing source field and a fixed reason (so rejects can be counted
by reason); all other records become canonical rows, in source order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fedpath.data.formats import AUTO_UNIT, ORDER_UNIT, TIMESTAMP_UNITS, ColumnMapping
from fedpath.data.quarantine import Quarantine
from fedpath.data.records import RawChunk
from fedpath.schema import SPLIT_COLUMN, SPLITS, conform

# 2100-01-01 UTC. A later time is a unit mistake, not a shopping event.
MAX_MS = 4_102_444_800_000
# 1995-01-01 UTC, before any web shop logged a click. An earlier time is a zero or a unit
# mistake (seconds read as milliseconds), and would put its session first in every split.
MIN_MS = 788_918_400_000
TOO_EARLY = "timestamp before 1995-01-01"
_DIGITS = "^[0-9]{1,18}$"  # unsigned, and 18 digits always fit int64
_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_UNSUPPORTED = -1
_UNKNOWN = -2


class _Verdicts:
    """The first problem of each record; a later check never overwrites an earlier one."""

    def __init__(self, n: int) -> None:
        self.field = np.full(n, None, dtype=object)
        self.reason = np.full(n, None, dtype=object)
        self.bad = np.zeros(n, dtype=bool)

    def flag(self, mask: np.ndarray, field: str, reason: str) -> None:
        new = mask & ~self.bad
        self.field[new] = field
        self.reason[new] = reason
        self.bad |= new


def to_events(chunk: RawChunk, mapping: ColumnMapping, quarantine: Quarantine) -> pd.DataFrame:
    """The canonical events of ``chunk``; its invalid records go to ``quarantine``."""
    fields, columns = chunk.fields, mapping.columns
    verdicts = _Verdicts(fields.num_rows)
    item = fields[columns["item_id"]]
    verdicts.flag(_numpy(pc.equal(item, "")), columns["item_id"], "missing id")
    path_keys = [c for c in ("session_id", "user_id") if c in columns]
    unknown = {c: _is_null(fields[columns[c]], mapping) for c in path_keys}
    verdicts.flag(
        np.logical_and.reduce(list(unknown.values())), columns[path_keys[0]], "missing id"
    )
    timestamps = _timestamps(fields, mapping, verdicts)
    actions = _actions(fields, mapping, verdicts)
    prices = _prices(fields, mapping, verdicts)
    if SPLIT_COLUMN in columns:
        split = fields[columns[SPLIT_COLUMN]]
        known = _numpy(pc.is_in(split, value_set=pa.array(SPLITS, type=pa.string())))
        verdicts.flag(~known, columns[SPLIT_COLUMN], "unknown split")

    bad = verdicts.bad
    if bad.any():
        quarantine.add(
            file=chunk.file,
            lines=chunk.lines[bad],
            field=verdicts.field[bad],
            reason=verdicts.reason[bad],
            raw=chunk.raw_text(np.flatnonzero(bad)),
        )
    keep = ~bad
    events: dict[str, np.ndarray | pd.Series] = {
        "timestamp": timestamps[keep],
        "action": actions[keep],
        "price": prices[keep],
        "item_id": _objects(item, np.zeros(len(keep), dtype=bool), keep),
    }
    for name in path_keys:
        events[name] = _objects(fields[columns[name]], unknown[name], keep)
    if SPLIT_COLUMN in columns:
        events[SPLIT_COLUMN] = _objects(split, np.zeros(len(keep), dtype=bool), keep)
    for name in ("category", "channel", "source"):
        if name in columns:
            values = fields[columns[name]]
            missing = _is_null(values, mapping)
            if name == "category" and mapping.category_separator:
                top = pc.split_pattern(values, mapping.category_separator, max_splits=1)
                values = pc.list_element(top, 0)
                missing = missing | _numpy(pc.equal(values, ""))
            events[name] = _objects(values, missing, keep)
    return conform(pd.DataFrame(events))


def _numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False))


def _is_null(values: pa.ChunkedArray, mapping: ColumnMapping) -> np.ndarray:
    tokens = pa.array(sorted(mapping.null_values | {""}), type=pa.string())
    return _numpy(pc.is_in(values, value_set=tokens))


def _objects(
    values: pa.ChunkedArray | pa.Array, missing: np.ndarray, keep: np.ndarray
) -> pd.Series:
    """The kept values as Python strings (the canonical dtype), None where missing.

    One object per distinct value, shared by the rows holding it: a chunk repeats each session,
    item and category many times, and one string object per row would make the loaded log
    several times its size.
    """
    encoded = pc.dictionary_encode(values.combine_chunks())
    table = np.append(_numpy(encoded.dictionary).astype(object), None)  # code -1 picks the None
    codes = np.where(missing, -1, _numpy(encoded.indices))[keep]
    # An explicit object Series: pandas 3 would infer its "str" dtype and turn None into NaN.
    return pd.Series(table[codes], dtype=object)


def _integers(text: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned decimal integers (0 where not one) and where the text was one."""
    ok = pc.match_substring_regex(text, _DIGITS)
    return _numpy(pc.cast(pc.if_else(ok, text, "0"), pa.int64())), _numpy(ok)


def _timestamps(fields: pa.Table, mapping: ColumnMapping, verdicts: _Verdicts) -> np.ndarray:
    source = mapping.columns["timestamp"]
    text = fields[source]
    unit = mapping.timestamp_unit
    if unit == ORDER_UNIT:  # a position, kept below any real time so it is never taken for one
        positions, ok = _integers(text)
        verdicts.flag(~ok | (positions >= MIN_MS), source, "bad position")
        return np.where(ok, positions, 0)
    if mapping.timestamp_format == "ISO8601":
        ms, ok = _iso_ms(text.to_pandas())
    elif mapping.timestamp_format is not None:
        parsed = pc.strptime(text, format=mapping.timestamp_format, unit="ms", error_is_null=True)
        ok = _numpy(parsed.is_valid())
        ms = _numpy(pc.fill_null(pc.cast(parsed, pa.int64()), 0))
    elif unit == AUTO_UNIT:
        ms, ok = _auto_ms(text)
    else:
        values, ok = _integers(text)
        multiplier, divisor = TIMESTAMP_UNITS[unit]
        ok = ok & (values < MAX_MS * divisor // multiplier)  # checked before scaling: no overflow
        ms = np.where(ok, values, 0) * multiplier // divisor
    verdicts.flag(~ok | (ms < 0) | (ms >= MAX_MS), source, "bad timestamp")
    if mapping.time_offset is not None:
        offsets, offset_ok = _integers(fields[mapping.time_offset])
        offset_ok = offset_ok & (offsets < MAX_MS)
        verdicts.flag(~offset_ok, mapping.time_offset, "bad timestamp")
        ms = ms + np.where(offset_ok, offsets, 0)
        verdicts.flag(ms >= MAX_MS, mapping.time_offset, "bad timestamp")
    verdicts.flag(ms < MIN_MS, source, TOO_EARLY)
    return ms


def _iso_ms(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 times (fractions and zones: beyond arrow's strptime) in ms, and which parsed."""
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    ok = parsed.notna().to_numpy()
    return np.where(ok, parsed.dt.as_unit("ms").array.asi8, 0), ok


def _auto_ms(text: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Unix seconds or milliseconds, told apart by size, and ISO 8601 text, in ms.

    Every time up to 2100 in seconds is below 1995 in milliseconds, so an integer below
    ``MIN_MS`` can only be seconds; a wrong one still fails the range checks after.
    """
    values, digits = _integers(text)
    ms = np.where(values < MIN_MS, values * 1000, values)  # < MIN_MS: * 1000 cannot overflow
    ok = digits.copy()
    if not digits.all():
        words = ~digits
        ms[words], ok[words] = _iso_ms(text.to_pandas()[words])
    return ms, ok


def _actions(fields: pa.Table, mapping: ColumnMapping, verdicts: _Verdicts) -> np.ndarray:
    if mapping.action_values is None:
        return np.full(fields.num_rows, int(mapping.default_action), dtype=np.int8)
    source = mapping.columns["action"]
    names = list(mapping.action_values)
    codes = np.array(
        [_UNSUPPORTED if a is None else int(a) for a in mapping.action_values.values()] + [_UNKNOWN]
    )
    found = pc.index_in(fields[source], value_set=pa.array(names, type=pa.string()))
    actions = codes[_numpy(pc.fill_null(found, len(names)))]  # not found: the last, _UNKNOWN
    verdicts.flag(actions == _UNKNOWN, source, "unknown action")
    verdicts.flag(actions == _UNSUPPORTED, source, "unsupported action")
    return np.maximum(actions, 0).astype(np.int8)


def _prices(fields: pa.Table, mapping: ColumnMapping, verdicts: _Verdicts) -> np.ndarray:
    if "price" not in mapping.columns:
        return np.full(fields.num_rows, np.nan)
    source = mapping.columns["price"]
    text = fields[source]
    unknown = _is_null(text, mapping)
    ok = pc.match_substring_regex(text, _NUMBER)
    prices = _numpy(pc.cast(pc.if_else(ok, text, "0"), pa.float64()))
    verdicts.flag(~unknown & ~(_numpy(ok) & np.isfinite(prices)), source, "unparsable price")
    verdicts.flag(~unknown & (prices < 0), source, "negative price")
    return np.where(unknown, np.nan, prices)
