"""Where the rows a load rejects go, so that no row is ever lost without a trace.

The quarantine is a JSON-lines file, one rejected record per line: ``file``, ``line`` (1-based in
the source, the header is line 1; a record spanning lines gives its first; in Parquet, the row
number), ``field`` (the source column at fault, null when the record as a whole is), ``reason``
and ``raw`` (the record as written; a Parquet row as JSON). JSON rather than CSV because a raw
record may hold any delimiter, quote or newline, and JSON escapes them without a second dialect
to get wrong.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from fedpath.data.closing import Closing

QUARANTINE_COLUMNS = ("file", "line", "field", "reason", "raw")


class Quarantine(Closing):
    """Collects rejected records and streams them to a JSON-lines file, chunk by chunk.

    The file is created on the first rejected record, so it exists only when something was
    rejected; a file already at ``path`` is removed on opening so stale rows never mix with a new
    load's. Without a ``path`` the rows go to a temporary file (named in :attr:`path`), because a
    count alone would leave the reader unable to see what went wrong.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self._requested = Path(path) if path is not None else None
        if self._requested is not None:
            self._requested.unlink(missing_ok=True)
        self._path: Path | None = None
        self._handle: TextIO | None = None
        self.count = 0

    @property
    def path(self) -> Path | None:
        """The file holding the rejected records; ``None`` while nothing was rejected."""
        return self._path

    def add(
        self,
        *,
        file: Path,
        lines: np.ndarray,
        field: str | Sequence[str | None] | None,
        reason: str | Sequence[str],
        raw: Sequence[str],
    ) -> None:
        """Keep rejected records; ``field`` and ``reason`` are one per record or one for all."""
        n = len(lines)
        if n == 0:
            return
        if len(raw) != n:
            raise ValueError(f"raw must hold one entry per line ({n}), got {len(raw)}")
        rows = pd.DataFrame(
            {
                "file": str(file),
                "line": np.asarray(lines, dtype=np.int64),
                "field": pd.Series(_per_record(field, n), dtype=object),
                "reason": _per_record(reason, n),
                "raw": list(raw),
            }
        )
        text = rows.to_json(orient="records", lines=True, force_ascii=False)
        self._open().write(text if text.endswith("\n") else text + "\n")
        self.count += n

    def _open(self) -> TextIO:
        if self._handle is None:
            if self._requested is None:
                handle, name = tempfile.mkstemp(prefix="fedpath-quarantine-", suffix=".jsonl")
                self._path = Path(name)
                self._handle = open(handle, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
            else:
                self._requested.parent.mkdir(parents=True, exist_ok=True)
                self._path = self._requested
                self._handle = self._path.open("w", encoding="utf-8")
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _per_record(value: str | Sequence[str | None] | None, n: int) -> list[str | None]:
    return [value] * n if value is None or isinstance(value, str) else list(value)


def read_quarantine(path: Path | str) -> pd.DataFrame:
    """The rejected records of a quarantine file, one row each, in the order they were rejected."""
    # dtype=False: a raw record "123" must stay the text it was, not become a number.
    frame = pd.read_json(path, lines=True, dtype=False, convert_dates=False)
    return frame.astype({"line": "int64"})[list(QUARANTINE_COLUMNS)]
