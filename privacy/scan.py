"""Proof, not promise, that raw ids stayed home: search every file a run wrote for them.

The scan reads each file's bytes, so it sees text formats (JSON, CSV, YAML, Markdown, logs) and
uncompressed binary ones (safetensors, pickles). It cannot see inside compressed containers
(PNG image data, compressed Parquet pages, zip): :func:`opaque_files` lists those, so a reader
knows what the scan did not prove clean. Ids must be distinctive: a short id such as ``"7"``
occurs in any file by chance.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

COMPRESSED_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gz", ".zip", ".parquet", ".pdf"})


@dataclass(frozen=True)
class Finding:
    """One raw id found in one file: where, so it can be traced to the code that wrote it."""

    path: Path
    raw_id: str
    line: int  # 1-based line of the match (binary files count their newline bytes too)
    offset: int  # byte offset of the match


def scan_for_raw_ids(folder: Path | str, raw_ids: Iterable[str]) -> list[Finding]:
    """Every occurrence of any of ``raw_ids`` in every file under ``folder`` (hidden ones too).

    An id is searched as UTF-8 and, where it differs, as JSON writes it with ASCII escapes.
    """
    pattern, forms = _pattern(list(raw_ids))
    findings: list[Finding] = []
    for path in _files(folder):
        data = path.read_bytes()
        for match in pattern.finditer(data):
            line = data.count(b"\n", 0, match.start()) + 1
            findings.append(Finding(path, forms[match.group()], line, match.start()))
    return findings


def opaque_files(folder: Path | str) -> list[Path]:
    """The files under ``folder`` in compressed formats, whose content a byte scan cannot see."""
    return [p for p in _files(folder) if p.suffix.lower() in COMPRESSED_SUFFIXES]


def _files(folder: Path | str) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"folder must be an existing directory, got {folder}")
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _pattern(raw_ids: list[str]) -> tuple[re.Pattern[bytes], dict[bytes, str]]:
    """One alternation over every searched form (longest first), and the id each form is of."""
    if not raw_ids or any(not isinstance(i, str) or not i for i in raw_ids):
        raise ValueError(f"raw_ids must be non-empty strings, got {raw_ids[:5]!r}")
    forms: dict[bytes, str] = {}
    for raw_id in raw_ids:
        forms[raw_id.encode("utf-8")] = raw_id
        forms[json.dumps(raw_id)[1:-1].encode("ascii")] = raw_id
    alternatives = sorted(forms, key=len, reverse=True)
    return re.compile(b"|".join(re.escape(f) for f in alternatives)), forms
