"""A partner's session-level ε, charged to its own ledger round by round, refused past budget.

Before it trains in a round, a partner computes the ε its run will have spent once that round is
done (the accountant composes the run's rounds tightly) and charges the ledger the difference
from what the run already charged, so a run's charges add up to exactly its accounted ε and the
ledger (basic composition across runs) stays valid. δ is charged once per run. The ledger is
the only state: a partner process that restarts, as Flower's simulation restarts them, counts
the rounds already charged to the run from it.

A refusal must reach the coordinator, which only sees a failed reply with its error text, so the
partner raises :class:`PrivacyRefusal`, whose message starts with a fixed marker and its index;
:func:`refused_partner` reads them back.
"""

from __future__ import annotations

import math
import re

from fedpath.errors import FedpathError
from fedpath.privacy.dp.ledger import PrivacyLedger
from fedpath.privacy.errors import BudgetExceededError

# Partner -> server fit metric: the run's session-level ε once the partner's round is trained.
SESSION_EPSILON = "dp_session_epsilon"
REFUSAL_MARKER = "privacy-budget-refusal"
_REFUSAL = re.compile(rf"{REFUSAL_MARKER} partner=(\d+)")


class PrivacyRefusal(FedpathError):
    """A partner declines to train: the round would take it past its privacy budget."""

    def __init__(self, partner: int, reason: str) -> None:
        self.partner = partner
        super().__init__(f"{REFUSAL_MARKER} partner={partner}: {reason}")


def refused_partner(failure: BaseException) -> int | None:
    """The partner index a failed reply names as refusing, or None for any other failure."""
    match = _REFUSAL.search(str(failure))
    return None if match is None else int(match.group(1))


def rounds_charged(ledger: PrivacyLedger, run_id: str) -> int:
    """How many rounds of ``run_id`` this partner has already charged (and so trained)."""
    return sum(1 for entry in ledger.charges() if entry.data["run_id"] == run_id)


def charge_round(
    ledger: PrivacyLedger,
    *,
    partner: int,
    run_id: str,
    epsilon_after: float,
    delta: float,
    note: str,
) -> None:
    """Charge the increase to ``epsilon_after`` (the run's ε once this round is trained).

    Raises :class:`PrivacyRefusal` carrying the ledger's reason when the budget would not hold.
    """
    charges = [e for e in ledger.charges() if e.data["run_id"] == run_id]
    spent = math.fsum(e.data["epsilon"] for e in charges)
    try:
        ledger.charge(run_id, max(epsilon_after - spent, 0.0), 0.0 if charges else delta, note)
    except BudgetExceededError as error:
        raise PrivacyRefusal(partner, str(error)) from None
