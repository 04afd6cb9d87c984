"""Simulated partner faults: dropping out mid-round, and sending a poisoned update.

A federation must be shown to survive both before anyone relies on it; here they are injected in
the partner's own ``fit``, where a real fault would strike, so the server, SecAgg+ and the
strategy meet them exactly as they would meet a real one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedpath.errors import FedpathError


class PartnerDropout(FedpathError):
    """Raised by a partner planned to fail: to Flower it is a client that died mid-round."""


@dataclass(frozen=True)
class FaultPlan:
    """Which partner fails in which round, and which partners poison their updates."""

    dropouts: frozenset[tuple[int, int]] = frozenset()  # (round, partner)
    hostile: frozenset[int] = frozenset()
    attack: str = "scale"
    factor: float = 10.0

    def drops(self, server_round: int, partner: int) -> bool:
        return (server_round, partner) in self.dropouts

    def dropped_in(self, server_round: int) -> list[int]:
        """The partners planned to fail in ``server_round`` (if they are sampled)."""
        return sorted(p for r, p in self.dropouts if r == server_round)


def plan_dropouts(
    fraction: float, n_partners: int, rounds: int, seed: int
) -> frozenset[tuple[int, int]]:
    """Each round, a seeded draw of ``round(fraction * n_partners)`` distinct partners.

    Drawn per round (not once) because real outages strike different partners over time; seeded
    by (run seed, round) so a rerun fails the same partners.
    """
    count = round(fraction * n_partners)
    plan = set()
    for server_round in range(1, rounds + 1):
        rng = np.random.default_rng([seed, server_round])
        plan.update((server_round, int(p)) for p in rng.choice(n_partners, count, replace=False))
    return frozenset(plan)


def poison(
    update: Sequence[np.ndarray], start: Sequence[np.ndarray], attack: str, factor: float
) -> list[np.ndarray]:
    """The update a hostile partner sends instead of ``update``, trained from ``start``.

    ``scale`` inflates the partner's step ``delta = update - start`` by ``factor`` (a model
    replacement attack: one partner outweighs the rest of a mean); ``sign_flip`` sends it
    backwards, ``factor`` times over (gradient ascent on the shared loss).
    """
    sign = {"scale": 1.0, "sign_flip": -1.0}
    if attack not in sign:
        raise ValueError(f"attack must be one of {sorted(sign)}, got {attack!r}")
    return [
        (s + sign[attack] * factor * (u - s)).astype(u.dtype, copy=False)
        for u, s in zip(update, start, strict=True)
    ]
