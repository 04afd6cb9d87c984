"""Which format a log is in: from its header, or its file name when it has none.

Detection never guesses from data values: a header either holds a format's columns or it does not,
and a headerless file is recognised only by its documented name. Anything else gets an error that
shows what was seen and what every format expects, so the fix (name the format, or pass a mapping)
is obvious.
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

from fedpath.data.formats import FORMATS, ColumnMapping, LogFormat, generic_format, get_format
from fedpath.data.records import (
    ParquetSource,
    first_record,
    is_parquet,
    plain_name,
    split_header,
)
from fedpath.errors import ConfigError, DataFormatError

_SHOWN_HEADER_CHARS = 200


def detect_format(path: Path | str) -> str:
    """The name of the built-in format of ``path``; DataFormatError when none fits."""
    path = Path(path)
    if is_parquet(path):
        with ParquetSource(path) as source:
            seen, names = source.header_text, set(source.columns)
        matches = [f for f in FORMATS.values() if f.has_header and set(f.columns) <= names]
    else:
        seen = first_record(path)
        matches = [
            f
            for f in FORMATS.values()
            if f.has_header and set(f.columns) <= set(split_header(seen, f.mapping.delimiter))
        ]
        if not matches:
            name = plain_name(path).lower()
            matches = [
                f
                for f in FORMATS.values()
                if f.file_pattern and fnmatch(name, f.file_pattern.lower())
            ]
    if not matches:
        raise DataFormatError(
            f"cannot detect the log format of {path}: its first line reads {_shown(seen)}. "
            f"Known formats expect:\n{_expectations()}\n"
            "Name the format (data.format=...), or name the log's columns: "
            "data.columns.item=... data.columns.time=... and data.columns.session=... "
            "or data.columns.user=... (docs/data.md)."
        )
    return max(matches, key=lambda f: len(f.columns)).name


def resolve_format(path: Path, fmt: str | None, mapping: ColumnMapping | None) -> LogFormat:
    """The format a load uses: the caller's mapping, the named format, or the detected one."""
    if mapping is not None:
        if fmt not in (None, "generic"):
            raise ConfigError(f"fmt must be None or 'generic' when a mapping is given, got {fmt!r}")
        return generic_format(mapping)
    if fmt == "generic":
        raise ConfigError("mapping must be given for fmt 'generic', got None")
    return get_format(fmt if fmt is not None else detect_format(path))


def check_columns(path: Path, columns: list[str], header_text: str, log_format: LogFormat) -> None:
    """DataFormatError unless the file has every column the format reads."""
    missing = [c for c in log_format.mapping.source_columns if c not in columns]
    if missing:
        expected = log_format.mapping.delimiter.join(log_format.columns)
        raise DataFormatError(
            f"{path}: header {_shown(header_text)} lacks column(s) {missing} "
            f"of format {log_format.name!r}, which expects: {expected}"
        )


def _shown(header: str) -> str:
    if len(header) > _SHOWN_HEADER_CHARS:
        header = header[:_SHOWN_HEADER_CHARS] + "..."
    return repr(header)


def _expectations() -> str:
    lines = []
    for f in FORMATS.values():
        columns = f.mapping.delimiter.join(f.columns)
        if f.has_header:
            lines.append(f"  {f.name}: header {columns}")
        else:
            lines.append(f"  {f.name}: no header, file named {f.file_pattern}, columns {columns}")
    return "\n".join(lines)
