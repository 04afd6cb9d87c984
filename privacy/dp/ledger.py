"""A partner's privacy budget ledger: what it has spent, across runs, that it will not exceed.

Each partner keeps one ledger file on its own premises. Differential privacy charges it (ε, δ)
per run before the partner trains; a charge that would take the totals past the configured
budget is refused with :class:`BudgetExceededError`. Runs compose by simple addition of ε and δ:
loose, but valid for any mix of mechanisms, accountants and runs; a run's own accountant may
compose tighter inside the run before it charges.

Storage: append-only JSON lines, each carrying the SHA-256 of its own content and its sequence
number, appended and fsynced while an exclusive ``flock`` is held over the check and the write
(two runs on one partner cannot both spend the last ε). After each append a head file beside the
ledger (``x.jsonl`` -> ``x.head.json``: entry count, ε and δ charged, last checksum) is replaced
atomically, because cutting whole lines off leaves a ledger that checks out line by line and
silently spends less. A crash can only leave a last line without its newline that the head does
not count: a charge that never returned, ignored when read and cut off before the next append.
A ledger shorter than its head (cut to fewer lines, or cut inside an acknowledged line) is
:class:`LedgerTruncatedError`; any other damage (a bad checksum, a missing or repeated sequence
number, a head that disagrees or is missing) is :class:`LedgerCorruptError`. Either stops the
partner: a ledger that may have lost spending must not let it spend again until an operator
restores it from a backup or records the loss (:meth:`LedgerLog.recover`). The same file records
erasures (`erasure.py`), so a regulator reads one history of what the partner did with its
users' data.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fedpath.durable import (
    append_line,
    atomic_write,
    canonical_json,
    fsync_dir,
    head_path,
    sha256_hex,
    utc_now,
)
from fedpath.privacy.errors import BudgetExceededError, LedgerCorruptError, LedgerTruncatedError

CHARGE = "charge"
ERASURE = "erasure"
RELATIVE_SLACK = 1e-9  # float sums of many small charges may exceed the budget by rounding only
RECOVERY_RUN = "ledger-recovery"  # the run_id of the charge recover_ledger records
RECOVERY_STEP = (
    "restore the ledger and its head from a backup, or record the loss with "
    "`fedpath partner recover-ledger --ledger {path}` (docs/privacy.md)"
)


@dataclass(frozen=True)
class LedgerEntry:
    seq: int
    time: str  # ISO 8601, UTC
    kind: str  # CHARGE or ERASURE
    data: dict[str, Any]
    sha256: str  # of the entry's other fields, as stored on its line


@dataclass(frozen=True)
class LedgerHead:
    """What the ledger held after its last acknowledged append, kept in its own file."""

    entries: int
    epsilon: float  # charged in all
    delta: float
    sha256: str  # the last entry's checksum; "" for an empty ledger


class LedgerLog:
    """The crash-safe, append-only file under a ledger and its head (module doc), without budget
    policy."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.head_path = head_path(self.path)

    def entries(self) -> list[LedgerEntry]:
        """Every complete entry, checked against the head; an absent pair is an empty ledger."""
        if not self.path.exists():
            self._check_head([])
            return []
        with self.path.open("rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            entries, _ = self._read(handle)
            self._check_head(entries)
        return entries

    def append(
        self,
        kind: str,
        data: Mapping[str, Any],
        *,
        check: Callable[[list[LedgerEntry]], None] | None = None,
    ) -> LedgerEntry:
        """Append one entry; ``check`` sees the entries under the same lock and may refuse."""
        with self._locked() as handle:
            entries, good_end = self._read(handle)
            self._check_head(entries)
            if check is not None:
                check(entries)
            return self._append(handle, entries, good_end, kind, data)

    def recover(self, *, epsilon: float | None, delta: float | None) -> LedgerEntry:
        """Charge what a cut ledger lost (by default: its head's totals less what it holds), cut
        a torn tail and reseal the head. Lines that fail their checksum still refuse."""
        with self._locked() as handle:
            entries, good_end = self._read(handle)
            head = self._head()
            held = [e for e in entries if e.kind == CHARGE]
            if head is None and (epsilon is None or delta is None):
                raise ValueError(
                    f"{self.head_path}: is missing, so the ε and δ lost from {self.path} are "
                    f"unknown: epsilon and delta must be given (what the partner's records say "
                    f"was charged beyond the {len(held)} charges it holds), got {epsilon}, {delta}"
                )
            if (
                head is not None
                and head.entries == len(entries)
                and head.sha256 == (entries[-1].sha256 if entries else "")
            ):
                raise ValueError(
                    f"{self.path}: must disagree with its head to be recovered, got "
                    f"agreement on {len(entries)} entries: nothing was lost"
                )
            lost_epsilon = (
                epsilon if epsilon is not None else head.epsilon - _total(held, "epsilon")
            )
            lost_delta = delta if delta is not None else head.delta - _total(held, "delta")
            _check_cost(lost_epsilon, lost_delta)
            recorded = "no head" if head is None else f"{head.entries} entries in its head"
            data = {
                "partner": self.path.stem,
                "run_id": RECOVERY_RUN,
                "epsilon": float(lost_epsilon),
                "delta": float(lost_delta),
                "note": f"recovered: {len(entries)} entries held, {recorded}",
            }
            return self._append(handle, entries, good_end, CHARGE, data)

    def _append(
        self,
        handle: BinaryIO,
        entries: list[LedgerEntry],
        good_end: int,
        kind: str,
        data: Mapping[str, Any],
    ) -> LedgerEntry:
        os.ftruncate(handle.fileno(), good_end)  # drop a torn line a crash left
        body = {"seq": len(entries), "time": utc_now(), "kind": kind, "data": dict(data)}
        entry = LedgerEntry(**body, sha256=sha256_hex(canonical_json(body)))
        append_line(handle, canonical_json({**body, "sha256": entry.sha256}))
        charges = [e for e in (*entries, entry) if e.kind == CHARGE]
        head = LedgerHead(
            len(entries) + 1, _total(charges, "epsilon"), _total(charges, "delta"), entry.sha256
        )
        atomic_write(self.head_path, canonical_json(asdict(head)))
        return entry

    @contextmanager
    def _locked(self) -> Iterator[BinaryIO]:
        created = not self.path.exists()
        with self.path.open("a+b") as handle:
            if created:
                fsync_dir(self.path.parent)
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield handle

    def _read(self, handle: BinaryIO) -> tuple[list[LedgerEntry], int]:
        """The checked entries and the byte offset just after the last complete line."""
        handle.seek(0)
        data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        lines = complete.split(b"\n")[:-1]  # JSON escapes "\r" in strings: "\n" ends records only
        return [self._parse(line, number) for number, line in enumerate(lines)], len(complete)

    def _head(self) -> LedgerHead | None:
        try:
            return LedgerHead(**json.loads(self.head_path.read_bytes()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as error:
            raise LedgerCorruptError(
                f"{self.head_path}: must be JSON with entries, epsilon, delta and sha256, got "
                f"{error}; {RECOVERY_STEP.format(path=self.path)}"
            ) from None

    def _check_head(self, entries: list[LedgerEntry]) -> None:
        """Refuse a ledger that lost acknowledged entries or disagrees with its head.

        One complete entry more than the head counts is a crash between the append and the head
        write: the charge is on disk, so it counts (the next append reseals the head).
        """
        head, held = self._head(), len(entries)
        step = RECOVERY_STEP.format(path=self.path)
        if head is None:
            if held:
                raise LedgerCorruptError(
                    f"{self.head_path}: must exist beside {self.path.name}, which holds {held} "
                    f"entries, got no such file: lost entries cannot be ruled out; {step}"
                )
            return
        if held < head.entries:
            spent = _total([e for e in entries if e.kind == CHARGE], "epsilon")
            raise LedgerTruncatedError(
                f"{self.path}: must hold the {head.entries} entries its head {self.head_path.name} "
                f"records (epsilon {head.epsilon:g} charged), got {held} complete entries "
                f"(epsilon {spent:g}): acknowledged charges were cut off or torn, so the partner "
                f"refuses to spend until an operator acts; {step}",
                recorded=head.entries,
                held=held,
            )
        last = entries[head.entries - 1].sha256 if head.entries else ""
        if held > head.entries + 1 or last != head.sha256:
            raise LedgerCorruptError(
                f"{self.path}: entry {head.entries - 1} must be the last its head "
                f"{self.head_path.name} acknowledged (sha256 {head.sha256 or 'none'}), got "
                f"{held} entries ending otherwise: the ledger or its head was replaced; {step}"
            )

    def _parse(self, line: bytes, seq: int) -> LedgerEntry:
        where = f"{self.path}: line {seq + 1}"
        try:
            record = json.loads(line)
            body = {k: record[k] for k in ("seq", "time", "kind", "data")}
            stored = record["sha256"]
        except (ValueError, TypeError, KeyError) as error:
            raise LedgerCorruptError(
                f"{where}: must be a JSON ledger entry, got {error}; the ledger cannot be trusted"
            ) from None
        if sha256_hex(canonical_json(body)) != stored:
            raise LedgerCorruptError(
                f"{where}: field sha256 must match the entry's content, got a mismatch "
                f"(the entry was altered); the ledger cannot be trusted"
            )
        if body["seq"] != seq:
            raise LedgerCorruptError(
                f"{where}: field seq must be {seq}, got {body['seq']} (an entry was removed or "
                f"moved); the ledger cannot be trusted"
            )
        return LedgerEntry(seq, body["time"], body["kind"], body["data"], stored)


class PrivacyLedger:
    """One partner's (ε, δ) budget over all its runs, kept in ``path`` (module doc)."""

    def __init__(
        self,
        path: Path | str,
        budget_epsilon: float,
        delta: float,
        *,
        partner: str | None = None,
    ) -> None:
        if not _finite(budget_epsilon) or budget_epsilon < 0:
            raise ValueError(f"budget_epsilon must be a finite number >= 0, got {budget_epsilon!r}")
        if not _finite(delta) or not 0 <= delta < 1:
            raise ValueError(f"delta must be a number in [0, 1), got {delta!r}")
        self.log = LedgerLog(path)
        self.budget_epsilon = float(budget_epsilon)
        self.budget_delta = float(delta)
        self.partner = partner or self.log.path.stem
        self.log.entries()  # a corrupt ledger refuses at opening, before anyone relies on it

    def spent(self) -> float:
        """ε spent so far, over every run this partner ever charged."""
        return _total(self.charges(), "epsilon")

    def spent_delta(self) -> float:
        return _total(self.charges(), "delta")

    def remaining(self) -> float:
        return max(self.budget_epsilon - self.spent(), 0.0)

    def can_afford(self, epsilon: float, delta: float = 0.0) -> bool:
        """Whether a charge of (ε, δ) would be accepted now."""
        _check_cost(epsilon, delta)
        return self._refusal(self.charges(), epsilon, delta) is None

    def charge(self, run_id: str, epsilon: float, delta: float, note: str = "") -> LedgerEntry:
        """Record that ``run_id`` spends (ε, δ), or refuse with :class:`BudgetExceededError`."""
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
        _check_cost(epsilon, delta)

        def refuse_over_budget(entries: list[LedgerEntry]) -> None:
            refusal = self._refusal([e for e in entries if e.kind == CHARGE], epsilon, delta)
            if refusal is not None:
                raise refusal

        data = {
            "partner": self.partner,
            "run_id": run_id,
            "epsilon": float(epsilon),
            "delta": float(delta),
            "note": note,
        }
        return self.log.append(CHARGE, data, check=refuse_over_budget)

    def charges(self) -> list[LedgerEntry]:
        return [e for e in self.log.entries() if e.kind == CHARGE]

    def erasures(self) -> list[LedgerEntry]:
        return [e for e in self.log.entries() if e.kind == ERASURE]

    def _refusal(
        self, charges: list[LedgerEntry], epsilon: float, delta: float
    ) -> BudgetExceededError | None:
        for unit, budget, requested in (
            ("epsilon", self.budget_epsilon, epsilon),
            ("delta", self.budget_delta, delta),
        ):
            spent = _total(charges, unit)
            if spent + requested > budget * (1 + RELATIVE_SLACK):
                return BudgetExceededError(
                    partner=self.partner,
                    budget=budget,
                    spent=spent,
                    requested=requested,
                    unit=unit,
                )
        return None


def _total(charges: list[LedgerEntry], unit: str) -> float:
    return math.fsum(e.data[unit] for e in charges)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_cost(epsilon: float, delta: float) -> None:
    if not _finite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    if not _finite(delta) or not 0 <= delta < 1:
        raise ValueError(f"delta must be a number in [0, 1), got {delta!r}")
