"""What a merchant asks of a session prefix, as labels derived from the cases.

``Cases.converts`` says whether the *session* contains a purchase, so a prefix that already holds
the purchase is labelled 1 and any model that counts purchases so far looks clairvoyant. A
merchant deciding what to do *now* needs "will this shopper still buy in this session": a
purchase among the steps that follow the prefix. ``purchase_ahead`` is that label; ``exit_next``
is "the very next step is leaving" (unknown on a censored session's last case).
"""

from __future__ import annotations

import numpy as np

from fedpath.data.containers import Cases
from fedpath.schema import Action


def purchase_ahead(cases: Cases) -> np.ndarray:
    """[n] bool: a purchase follows this prefix within its session.

    The label of a case is an OR over the next actions of it and its session's later cases (a
    reversed cumulative sum per session), so ``cases`` must hold each session's prefixes whole and
    in order, as ``expand_prefixes`` cuts them: label first, take subsets after.
    """
    n = len(cases)
    if n == 0:
        return np.zeros(0, dtype=bool)
    bought = (np.asarray(cases.next_action) == Action.PURCHASE).astype(np.int64)
    order = np.lexsort((-np.arange(n), cases.session_index))  # per session, last prefix first
    running = np.cumsum(bought[order])
    session = cases.session_index[order]
    starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]])
    before = np.repeat(running[starts] - bought[order][starts], np.diff(np.r_[starts, n]))
    ahead = np.empty(n, dtype=bool)
    ahead[order] = (running - before) > 0
    return ahead


def exit_next(cases: Cases) -> tuple[np.ndarray, np.ndarray]:
    """([n] bool label, [n] bool known): the next step is an exit, where the log shows it."""
    actions = np.asarray(cases.next_action)
    return actions == Action.EXIT, actions >= 0


CONVERSION_TARGETS = ("session", "ahead")  # session: Cases.converts; ahead: purchase_ahead


def conversion_label(cases: Cases, target: str) -> np.ndarray:
    """[n] bool label of the conversion question ``target`` (one of ``CONVERSION_TARGETS``)."""
    if target not in CONVERSION_TARGETS:
        raise ValueError(f"target must be one of {CONVERSION_TARGETS}, got {target!r}")
    return cases.converts.astype(bool) if target == "session" else purchase_ahead(cases)
