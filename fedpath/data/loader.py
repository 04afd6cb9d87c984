"""Public e-commerce logs -> the canonical events table, streamed chunk by chunk.

Memory stays bounded by the chunk size (plus the compact output): a source is read ``chunk_rows``
lines at a time, each chunk is validated and converted in one vectorized pass, and every record
ends either in the output or in the quarantine, never silently nowhere.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fedpath.data.convert import to_events
from fedpath.data.detect import check_columns, resolve_format
from fedpath.data.formats import ORDER_UNIT, ColumnMapping, LogFormat, get_format
from fedpath.data.quarantine import Quarantine
from fedpath.data.records import open_source
from fedpath.errors import DataFormatError
from fedpath.schema import empty_events
from fedpath.synth.output import meta_path

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 500_000


@dataclass(frozen=True)
class LoadedLog:
    """A loaded log with the account of its load.

    ``n_rows`` counts the records read from the source(s), header excluded, so that
    ``n_rows == len(events) + n_quarantined``. ``quarantine_path`` is None when nothing was
    rejected. ``synthetic`` comes from the file's ``<name>.meta.json`` sidecar (written by
    ``fedpath synth``), so a generated log is never reported as a real one. ``clockless``: its
    times are positions (the log has no clock), so no time cut can have censored a session.
    """

    events: pd.DataFrame
    fmt: str
    path: Path
    n_rows: int
    n_quarantined: int
    quarantine_path: Path | None
    synthetic: bool = False
    clockless: bool = False


def iter_events(
    path: Path | str,
    *,
    fmt: str | None = None,
    mapping: ColumnMapping | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    quarantine: Quarantine,
) -> Iterator[pd.DataFrame]:
    """Canonical event chunks of the log at ``path``; rejected records go to ``quarantine``."""
    path = Path(path)
    _check_chunk_rows(chunk_rows)
    return _iter(path, resolve_format(path, fmt, mapping), chunk_rows, quarantine)


def load_events(
    path: Path | str,
    *,
    fmt: str | None = None,
    mapping: ColumnMapping | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    quarantine_path: Path | str | None = None,
) -> LoadedLog:
    """The whole log at ``path`` as one events table (see :func:`iter_events`)."""
    path = Path(path)
    _check_chunk_rows(chunk_rows)
    log_format = resolve_format(path, fmt, mapping)
    synthetic = _synthetic(path)
    with Quarantine(quarantine_path) as quarantine:
        chunks = list(_iter(path, log_format, chunk_rows, quarantine))
    events = pd.concat(chunks, ignore_index=True) if chunks else empty_events()
    logger.info("loaded %d events from %s (format %s)", len(events), path, log_format.name)
    if quarantine.count:
        logger.warning(
            "%d records of %s quarantined in %s", quarantine.count, path, quarantine.path
        )
    return LoadedLog(
        events=events,
        fmt=log_format.name,
        path=path,
        n_rows=len(events) + quarantine.count,
        n_quarantined=quarantine.count,
        quarantine_path=quarantine.path,
        synthetic=synthetic,
        clockless=log_format.mapping.timestamp_unit == ORDER_UNIT,
    )


def _check_chunk_rows(chunk_rows: int) -> None:
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")


def _iter(
    path: Path, log_format: LogFormat, chunk_rows: int, quarantine: Quarantine
) -> Iterator[pd.DataFrame]:
    for source_path, source_format in _sources(path, log_format):
        mapping = source_format.mapping
        with open_source(source_path, source_format) as source:
            check_columns(source_path, source.columns, source.header_text, source_format)
            for raw in source.chunks(
                columns=mapping.source_columns, chunk_rows=chunk_rows, quarantine=quarantine
            ):
                events = to_events(raw, mapping, quarantine)
                if len(events):
                    yield events


def _sources(path: Path, log_format: LogFormat) -> list[tuple[Path, LogFormat]]:
    """The file itself, then its sibling (YOOCHOOSE buys beside clicks) when there is one."""
    sources = [(path, log_format)]
    sibling = log_format.sibling
    if sibling is not None:
        companion = path.with_name(path.name.replace(sibling.old, sibling.new))
        if companion != path and companion.is_file():
            sources.append((companion, get_format(sibling.fmt)))
    return sources


def _synthetic(path: Path) -> bool:
    sidecar = meta_path(path)  # the writer's own rule for where the sidecar lives
    if not sidecar.is_file():
        return False
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{sidecar}: sidecar must be JSON, got {error}") from None
    synthetic = meta.get("synthetic", False) if isinstance(meta, dict) else None
    if not isinstance(synthetic, bool):
        raise DataFormatError(
            f"{sidecar}: sidecar must be a JSON object with 'synthetic' true or false, got {meta!r}"
        )
    return synthetic
