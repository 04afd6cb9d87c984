"""A partner's own log, described by naming its columns (``data.columns.*`` on the command line).

Any CSV / TSV (gzip or not) or Parquet export reads without a new format: the caller names which
header column holds the session, user, item, time, action and category, and this module turns
that into a :class:`ColumnMapping`. The delimiter is the one of ``, TAB ; |`` under which the
header holds every named column, so nothing is guessed from data values; a name the header lacks
is refused with the header shown. Times are read per value as unix seconds or milliseconds (told
apart by size) or ISO 8601 text, unless ``time_format`` names a unit or a strptime format.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fedpath.data.formats import AUTO_UNIT, TIMESTAMP_UNITS, ColumnMapping
from fedpath.data.records import ParquetSource, first_record, is_parquet, split_header
from fedpath.errors import ConfigError

# Command-line name -> canonical column.
COLUMN_NAMES = {
    "session": "session_id",
    "user": "user_id",
    "item": "item_id",
    "time": "timestamp",
    "action": "action",
    "category": "category",
}
DELIMITERS = (",", "\t", ";", "|")
ISO_FORMAT = "ISO8601"


def named_mapping(
    path: Path,
    columns: Mapping[str, str | None],
    *,
    actions: Mapping[str, str | None] | None = None,
    time_format: str | None = None,
) -> ColumnMapping:
    """The mapping of the log at ``path`` whose columns ``columns`` names (None: not in it)."""
    named = {key: str(name) for key, name in columns.items() if name is not None}
    unknown = sorted(set(named) - set(COLUMN_NAMES))
    if unknown:
        raise ConfigError(f"data.columns must be among {sorted(COLUMN_NAMES)}, got {unknown}")
    for key in ("item", "time"):
        if key not in named:
            raise ConfigError(f"data.columns.{key} must name a column of {path}, got none")
    if "session" not in named and "user" not in named:
        raise ConfigError(f"data.columns.session or data.columns.user must name a column of {path}")
    if ("action" in named) != (actions is not None):
        raise ConfigError(
            "data.actions must map each value of data.columns.action to view, cart or purchase "
            "(e.g. data.actions={click:view,basket:cart,order:purchase}) exactly when it "
            f"is named, got data.columns.action={named.get('action')} and actions={actions}"
        )
    return ColumnMapping.from_dict(
        {
            "columns": {COLUMN_NAMES[key]: name for key, name in named.items()},
            "action_values": None if actions is None else dict(actions),
            "delimiter": _delimiter(path, named),
            **_time(time_format),
        }
    )


def _delimiter(path: Path, named: dict[str, str]) -> str:
    """The delimiter under which the header holds every named column (Parquet: any)."""
    if is_parquet(path):
        with ParquetSource(path) as source:
            headers = {DELIMITERS[0]: source.columns}
            header = source.header_text
    else:
        header = first_record(path)
        headers = {d: split_header(header, d) for d in DELIMITERS}
    for delimiter, names in headers.items():
        if all(name in names for name in named.values()):
            return delimiter
    widest = max(headers.values(), key=len)
    key, name = next((k, n) for k, n in named.items() if n not in widest)
    raise ConfigError(
        f"data.columns.{key}={name} is not a column of {path}: its header reads {header!r} "
        f"(columns {widest})"
    )


def _time(time_format: str | None) -> dict[str, str]:
    if time_format is None:
        return {"timestamp_unit": AUTO_UNIT}
    if time_format in TIMESTAMP_UNITS:
        return {"timestamp_unit": time_format}
    if time_format.upper() in ("ISO", ISO_FORMAT):
        return {"timestamp_format": ISO_FORMAT}
    if "%" not in time_format:
        raise ConfigError(
            f"data.time_format must be null (seconds, milliseconds or ISO 8601, read per value), "
            f"one of {sorted(TIMESTAMP_UNITS)}, ISO8601 or a strptime format, got {time_format!r}"
        )
    return {"timestamp_format": time_format}
