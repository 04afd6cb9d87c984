"""Writes that survive a crash: the two primitives the ledger, the audit trail and stores share.

A file is either replaced whole (write a temporary beside it, fsync, rename over, fsync the
folder) or grown by whole lines (append, fsync). Either way a crash leaves the old content or
the new one, plus at most one torn last line that the reader can recognise.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value (sorted keys, no spaces), so anyone can recompute a hash."""
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError as error:
        raise ValueError(f"value must be JSON without NaN or infinity, got {error}") from None
    return text.encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks so a large model or store fits in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def head_path(path: Path) -> Path:
    """Where the head of the append-only log at ``path`` is kept: ``x.jsonl`` -> ``x.head.json``.

    Cutting whole lines off a log leaves a valid log; the head, replaced atomically after each
    append, remembers how long it was.
    """
    return path.with_name(f"{path.stem}.head.json")


def utc_now() -> str:
    """The current time as ISO 8601 in UTC, the one clock format every record uses."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def fsync_dir(folder: Path) -> None:
    """Make a file's creation or rename itself durable, not only its bytes."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def atomic_write(path: Path, data: bytes) -> Path:
    """Replace ``path`` by ``data`` so that a crash leaves either the old file or the new one."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


def append_line(handle: BinaryIO, line: bytes) -> None:
    """Append one newline-terminated record and wait until it is on disk."""
    handle.seek(0, os.SEEK_END)
    handle.write(line + b"\n")
    handle.flush()
    os.fsync(handle.fileno())
