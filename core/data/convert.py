"""Text records -> canonical events, validated one whole chunk at a time.

Each check is one vectorized pass over a column. A record that fails is quarantined with the first
failing source field and a fixed reason (so rejects can be counted by reason); all other records
become canonical rows, in source order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedpath.data.formats import TIMESTAMP_UNITS, ColumnMapping
from fedpath.data.quarantine import Quarantine
from fedpath.data.records import RawChunk
from fedpath.schema import conform

# 2100-01-01 UTC. A later (or negative) time is a unit mistake, not a shopping event.
MAX_MS = 4_102_444_800_000
_DIGITS = r"[0-9]{1,18}"  # 18 digits always fit int64
_UNSUPPORTED = -1


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
    verdicts = _Verdicts(len(fields))
    item = fields[columns["item_id"]]
    verdicts.flag((item == "").to_numpy(dtype=bool), columns["item_id"], "missing id")
    path_keys = [c for c in ("session_id", "user_id") if c in columns]
    unknown = {c: _is_null(fields[columns[c]], mapping) for c in path_keys}
    verdicts.flag(
        np.logical_and.reduce(list(unknown.values())), columns[path_keys[0]], "missing id"
    )
    timestamps = _timestamps(fields, mapping, verdicts)
    actions = _actions(fields, mapping, verdicts)
    prices = _prices(fields, mapping, verdicts)

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
        "item_id": _objects(item[keep], np.zeros(int(keep.sum()), dtype=bool)),
    }
    for name in path_keys:
        events[name] = _objects(fields[columns[name]][keep], unknown[name][keep])
    for name in ("category", "channel", "source"):
        if name in columns:
            values = fields[columns[name]]
            missing = _is_null(values, mapping)
            if name == "category" and mapping.category_separator:
                values = values.str.partition(mapping.category_separator)[0]
                missing = missing | (values == "").to_numpy(dtype=bool)
            events[name] = _objects(values[keep], missing[keep])
    return conform(pd.DataFrame(events))


def _is_null(values: pd.Series, mapping: ColumnMapping) -> np.ndarray:
    return values.isin(mapping.null_values | {""}).to_numpy(dtype=bool)


def _objects(values: pd.Series, missing: np.ndarray) -> pd.Series:
    """Text as Python objects (the canonical dtype), None where missing.

    One object per distinct value, shared by the rows holding it: a chunk repeats each session,
    item and category many times, and one string object per row would make the loaded log
    several times its size.
    """
    codes, uniques = pd.factorize(values)
    table = np.append(np.asarray(uniques, dtype=object), None)  # code -1 picks the None
    # An explicit object Series: pandas 3 would infer its "str" dtype and turn None into NaN.
    return pd.Series(table[np.where(missing, -1, codes)], dtype=object)


def _integers(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned decimal integers (0 where not one) and where the text was one."""
    ok = text.str.fullmatch(_DIGITS).to_numpy(dtype=bool)
    return text.where(ok, "0").astype("int64").to_numpy(), ok


def _timestamps(fields: pd.DataFrame, mapping: ColumnMapping, verdicts: _Verdicts) -> np.ndarray:
    source = mapping.columns["timestamp"]
    text = fields[source]
    if mapping.timestamp_format is None:
        values, ok = _integers(text)
        multiplier, divisor = TIMESTAMP_UNITS[mapping.timestamp_unit]
        ok = ok & (
            values < MAX_MS * divisor // multiplier
        )  # checked before scaling: cannot overflow
        ms = np.where(ok, values, 0) * multiplier // divisor
    else:
        parsed = pd.to_datetime(text, format=mapping.timestamp_format, utc=True, errors="coerce")
        ok = parsed.notna().to_numpy(dtype=bool)
        ms = np.where(ok, parsed.dt.as_unit("ms").array.asi8, 0)
    verdicts.flag(~ok | (ms >= MAX_MS), source, "bad timestamp")
    if mapping.time_offset is not None:
        offsets, offset_ok = _integers(fields[mapping.time_offset])
        offset_ok = offset_ok & (offsets < MAX_MS)
        verdicts.flag(~offset_ok, mapping.time_offset, "bad timestamp")
        ms = ms + np.where(offset_ok, offsets, 0)
        verdicts.flag(ms >= MAX_MS, mapping.time_offset, "bad timestamp")
    return ms


def _actions(fields: pd.DataFrame, mapping: ColumnMapping, verdicts: _Verdicts) -> np.ndarray:
    n = len(fields)
    if mapping.action_values is None:
        return np.full(n, int(mapping.default_action), dtype=np.int8)
    source = mapping.columns["action"]
    table = {k: _UNSUPPORTED if v is None else int(v) for k, v in mapping.action_values.items()}
    codes = fields[source].map(table).to_numpy(dtype=np.float64, na_value=np.nan)
    verdicts.flag(np.isnan(codes), source, "unknown action")
    verdicts.flag(codes == _UNSUPPORTED, source, "unsupported action")
    return np.where(codes >= 0, codes, 0).astype(np.int8)


def _prices(fields: pd.DataFrame, mapping: ColumnMapping, verdicts: _Verdicts) -> np.ndarray:
    if "price" not in mapping.columns:
        return np.full(len(fields), np.nan)
    source = mapping.columns["price"]
    text = fields[source]
    unknown = _is_null(text, mapping)
    prices = pd.to_numeric(text.where(~unknown, "0"), errors="coerce").to_numpy(dtype=np.float64)
    verdicts.flag(~np.isfinite(prices), source, "unparsable price")
    verdicts.flag(prices < 0, source, "negative price")
    return np.where(unknown, np.nan, prices)
