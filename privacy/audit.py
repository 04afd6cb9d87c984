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
Appends take an exclusive ``flock`` on the log and re-read its verified end under it, so two
processes appending to one trail interleave whole entries instead of both writing seq N. The
``model`` entry records the SHA-256 of the run's artifacts; :func:`verify_artifacts` rehashes
them, since a chain that verifies says nothing about a model file replaced beside it.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fedpath.durable import (
    append_line,
    atomic_write,
    canonical_json,
    file_sha256,
    head_path,
    sha256_hex,
    utc_now,
)
from fedpath.privacy.errors import ArtifactMismatchError, AuditChainError

AUDIT_FILE = "audit.jsonl"
GENESIS = "0" * 64
# The kinds fedpath writes; payloads are plain JSON.
RUN = "run"  # config and code version
PARTNER_DATA = "partner_data"  # a partner's data digest, computed on its premises
ROUND = "round"  # who was asked, who took part, who dropped
PRIVACY_PLAN = "privacy_plan"  # before training: the DP run id, the most ε a partner may charge
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
        entries = self._verified()
        self.head = entries[-1].hash if entries else GENESIS

    def append(self, kind: str, payload: Mapping[str, Any]) -> AuditEntry:
        """Add one entry after the trail's current end, durably, under an exclusive lock."""
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"kind must be a non-empty string, got {kind!r}")
        with self.path.open("a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
            entries = self._verified()  # another process may have appended since
            body = {
                "seq": len(entries),
                "time": utc_now(),
                "kind": kind,
                "payload": dict(payload),
                "prev_hash": entries[-1].hash if entries else GENESIS,
            }
            entry = AuditEntry(**body, hash=sha256_hex(canonical_json(body)))
            append_line(handle, canonical_json(asdict(entry)))
            head = canonical_json({"seq": entry.seq, "hash": entry.hash})
            atomic_write(head_path(self.path), head)
        self.head = entry.hash
        return entry

    def _verified(self) -> list[AuditEntry]:
        """The trail's entries; none for a trail not yet written (no bytes and no head)."""
        empty = not self.path.exists() or self.path.stat().st_size == 0
        if empty and not head_path(self.path).exists():
            return []
        return verify_audit(self.path)


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


def verify_artifacts(run_dir: Path | str, entries: list[AuditEntry]) -> dict[str, str]:
    """The files the trail's last ``model`` entry hashed, rehashed in ``run_dir`` and equal.

    Raises :class:`ArtifactMismatchError` naming the first file that is missing or differs;
    returns {} for a trail without a ``model`` entry (a run that has not finished).
    """
    run_dir = Path(run_dir)
    recorded = [e for e in entries if e.kind == MODEL]
    if not recorded:
        return {}
    last = recorded[-1]
    files: dict[str, str] = last.payload.get("files") or {}
    for name, expected in files.items():
        path = run_dir / name
        if not path.is_file():
            raise ArtifactMismatchError(
                f"{path}: must exist as entry {last.seq} of the audit trail recorded it, got no "
                f"such file"
            )
        found = file_sha256(path)
        if found != expected:
            raise ArtifactMismatchError(
                f"{path}: SHA-256 must be {expected} as entry {last.seq} of the audit trail "
                f"recorded it, got {found}: the file was altered or replaced after the run"
            )
    return files
