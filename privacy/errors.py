"""Privacy faults, typed so a caller can tell a refusal it must report from a bug.

Every one is a :class:`fedpath.errors.FedpathError`. A refusal (budget) and an integrity failure
(tampered, wrongly keyed, truncated) are different answers: the first is policy working, the
second means a file must not be trusted.
"""

from __future__ import annotations

from fedpath.errors import FedpathError


class BudgetExceededError(FedpathError):
    """A partner refuses a privacy charge that would take it past its configured budget."""

    def __init__(
        self, *, partner: str, budget: float, spent: float, requested: float, unit: str = "epsilon"
    ) -> None:
        self.partner, self.budget, self.spent, self.requested = partner, budget, spent, requested
        super().__init__(
            f"partner {partner!r} refuses to spend {unit} {requested:g}: it has spent "
            f"{spent:g} of its budget {budget:g}, so only {max(budget - spent, 0.0):g} is left"
        )


class IntegrityError(FedpathError):
    """A file that fails its integrity check and must not be used (tampered, wrong key, cut)."""


class DecryptionError(IntegrityError):
    """An encrypted artifact that does not authenticate under the given key, kind and name."""


class AuditChainError(IntegrityError):
    """A broken audit trail; ``seq`` is the first entry at which the chain fails (-1: the head)."""

    def __init__(self, message: str, *, seq: int) -> None:
        self.seq = seq
        super().__init__(message)


class ArtifactMismatchError(IntegrityError):
    """A run's file whose bytes are not those its audit trail recorded (altered or replaced)."""


class LedgerCorruptError(IntegrityError):
    """A privacy ledger whose recorded history cannot be trusted (not a torn last line)."""


class LedgerTruncatedError(LedgerCorruptError):
    """A ledger shorter than its head records: acknowledged charges were cut off or torn."""

    def __init__(self, message: str, *, recorded: int, held: int) -> None:
        self.recorded, self.held = recorded, held
        super().__init__(message)
