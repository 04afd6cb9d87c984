"""An append-only, hash-chained audit trail of a run, and its verification.

Each line is one JSON entry ``{seq, time, kind, payload, prev_hash, hash}`` where ``hash`` is the
SHA-256 of the canonical JSON of the other fields and ``prev_hash`` the previous entry's hash
(64 zeros for the first). Editing an entry breaks its hash; rewriting it with a fresh hash breaks
the next entry's ``prev_hash``; removing, inserting or moving one breaks ``seq``. Cutting the tail
leaves a valid chain, so the last entry's ``seq`` and ``hash`` are also kept in a head file beside
the log (written atomically after each append) that must agree with it.

What the chain cannot stop: someone able to rewrite the whole log *and* its head. Against that the
head hash must live somewhere else too, which is why :func:`verify_audit` accepts an expected
head (logged when a run writes its trail and printed by ``fedpath audit verify``), which every
partner should keep.
One writer per log: the coordinator of a run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fedpath.privacy.durable import (
    append_line,
    atomic_write,
    canonical_json,
    head_path,
    sha256_hex,
    utc_now,
)
from fedpath.privacy.errors import AuditChainError

AUDIT_FILE = "audit.jsonl"
GENESIS = "0" * 64
# The kinds fedpath writes; payloads are plain JSON.
RUN = "run"  # config and code version
PARTNER_DATA = "partner_data"  # a partner's data digest, computed on its premises
ROUND = "round"  # who was asked, who took part, who dropped
PRIVACY = "privacy"  # (ε, δ) spent, by the differential-privacy layer
MODEL = "model"  # hashes of the model and the run's other artifacts


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time: str  # ISO 8601, UTC
    kind: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class AuditLog:
    """Appends to the audit trail at ``path``; an existing trail is verified before it grows."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        exists = self.path.exists() or head_path(self.path).exists()
        entries = verify_audit(self.path) if exists else []
        self._next_seq = len(entries)
        self.head = entries[-1].hash if entries else GENESIS

    def append(self, kind: str, payload: Mapping[str, Any]) -> AuditEntry:
        """Add one entry after the current head, durably, and move the head to it."""
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"kind must be a non-empty string, got {kind!r}")
        body = {
            "seq": self._next_seq,
            "time": utc_now(),
            "kind": kind,
            "payload": dict(payload),
            "prev_hash": self.head,
        }
        entry = AuditEntry(**body, hash=sha256_hex(canonical_json(body)))
        with self.path.open("ab") as handle:
            append_line(handle, canonical_json(asdict(entry)))
        atomic_write(head_path(self.path), canonical_json({"seq": entry.seq, "hash": entry.hash}))
        self._next_seq, self.head = entry.seq + 1, entry.hash
        return entry


def verify_audit(path: Path | str, *, expected_head: str | None = None) -> list[AuditEntry]:
    """The entries of an intact trail, or :class:`AuditChainError` at the first bad one."""
    path = Path(path)
    if not path.is_file():
        raise AuditChainError(f"{path}: the audit log must exist, got no such file", seq=0)
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline, as every complete append does
    entries: list[AuditEntry] = []
    for number, line in enumerate(lines):
        entries.append(_checked(path, line, number, entries[-1].hash if entries else GENESIS))
    if torn:
        raise AuditChainError(
            f"{path}: entry {len(lines)} (line {len(lines) + 1}) must end with a newline, got a "
            f"cut line: the log was truncated mid-entry",
            seq=len(lines),
        )
    _check_head(path, entries)
    last = entries[-1].hash if entries else GENESIS
    if expected_head is not None and expected_head != last:
        raise AuditChainError(
            f"{path}: the last entry's hash must be the expected head {expected_head}, got "
            f"{last}: the log differs from the one whose head was kept",
            seq=len(entries) - 1,
        )
    return entries


def _checked(path: Path, line: bytes, number: int, prev_hash: str) -> AuditEntry:
    where = f"{path}: entry {number} (line {number + 1})"
    try:
        entry = AuditEntry(**json.loads(line))
    except (ValueError, TypeError) as error:
        raise AuditChainError(
            f"{where} must be a JSON audit entry, got {error}", seq=number
        ) from None
    if entry.seq != number:
        raise AuditChainError(
            f"{where}: seq must be {number}, got {entry.seq}: an entry was removed, inserted or "
            f"moved here",
            seq=number,
        )
    if entry.prev_hash != prev_hash:
        raise AuditChainError(
            f"{where}: prev_hash must be entry {number - 1}'s hash, got another: entry "
            f"{number - 1} was rewritten",
            seq=number - 1,
        )
    body = {k: v for k, v in asdict(entry).items() if k != "hash"}
    if sha256_hex(canonical_json(body)) != entry.hash:
        raise AuditChainError(
            f"{where}: hash must match the entry's content, got a mismatch: it was edited",
            seq=number,
        )
    return entry


def _check_head(path: Path, entries: list[AuditEntry]) -> None:
    head_file = head_path(path)
    try:
        head = json.loads(head_file.read_bytes())
        head_seq, head_hash = int(head["seq"]), str(head["hash"])
    except FileNotFoundError:
        raise AuditChainError(
            f"{head_file}: the head of {path.name} must exist, got no such file", seq=-1
        ) from None
    except (ValueError, TypeError, KeyError) as error:
        raise AuditChainError(
            f"{head_file}: must be JSON with seq and hash, got {error}", seq=-1
        ) from None
    last_seq = len(entries) - 1
    if head_seq > last_seq:
        raise AuditChainError(
            f"{path}: must hold entries up to {head_seq} as its head records, got {last_seq + 1} "
            f"entries: entries {last_seq + 1}..{head_seq} were removed from the end",
            seq=last_seq + 1,
        )
    if head_seq < last_seq:
        raise AuditChainError(
            f"{path}: must end at entry {head_seq} as its head records, got entries up to "
            f"{last_seq}: entry {head_seq + 1} was added after the head (or a crash cut the "
            f"append short)",
            seq=head_seq + 1,
        )
    if head_seq >= 0 and entries[head_seq].hash != head_hash:
        raise AuditChainError(
            f"{path}: entry {head_seq}'s hash must be the head's {head_hash}, got "
            f"{entries[head_seq].hash}: the log was rewritten",
            seq=head_seq,
        )
