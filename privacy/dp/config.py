"""The typed differential-privacy settings of a run (``conf/privacy/*.yaml``), and which
combinations fedpath refuses.

Two levels, each optional, protecting different people:

* **session level** protects each shopper's session inside a partner against everyone outside
  that partner (the coordinator and the other partners included): DP-SGD over sessions for the
  neural models, the Gaussian mechanism on the counts for the count models. The partner adds the
  noise itself and charges its own budget ledger before each round it trains.
* **partner level** protects whole partners (McMahan et al. 2018): each partner's update is
  clipped to an L2 norm and Gaussian noise is added to the aggregate, with Flower's own DP
  strategy wrappers and client mods.

Why some combinations are refused (the error says which rule): under SecAgg+ the coordinator
sees only the sum of the updates, never one of them, so server-side clipping has nothing to
clip, and adaptive clipping would need each partner's "was I clipped" bit in the clear. Only
client-side fixed clipping composes, with the noise added by the partners before masking
(distributed noise) so that the sum the coordinator unmasks is already private.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedpath.errors import ConfigError, require

CLIPPINGS = ("fixed", "adaptive")
SIDES = ("client", "server")


@dataclass(frozen=True)
class SessionDP:
    """Session-level DP. ``clip_norm`` and ``sample_rate`` drive DP-SGD (neural models);
    ``max_session_cases`` bounds what one session adds to the counts (count models)."""

    noise_multiplier: float = 3.0  # noise std / sensitivity
    clip_norm: float = 1.0  # L2 bound of one session's gradient (mean over its cases)
    sample_rate: float = 0.25  # Poisson rate at which a step samples each session
    max_session_cases: int = 10  # count models: a session's cases beyond these are not counted
    budget_epsilon: float = 10.0  # each partner's lifetime ε budget, kept in its ledger
    budget_delta: float = 1e-4  # each partner's lifetime δ budget (a run charges δ once)
    ledger_dir: str = "privacy-ledgers"  # folder of the partners' ledgers (partner-<i>.jsonl)

    def __post_init__(self) -> None:
        require(self.noise_multiplier > 0, "session.noise_multiplier", "> 0", self.noise_multiplier)
        require(self.clip_norm > 0, "session.clip_norm", "> 0", self.clip_norm)
        require(0 < self.sample_rate <= 1, "session.sample_rate", "in (0, 1]", self.sample_rate)
        require(
            isinstance(self.max_session_cases, int) and self.max_session_cases >= 1,
            "session.max_session_cases",
            "an integer >= 1",
            self.max_session_cases,
        )
        require(
            math.isfinite(self.budget_epsilon) and self.budget_epsilon > 0,
            "session.budget_epsilon",
            "a finite number > 0",
            self.budget_epsilon,
        )
        require(0 < self.budget_delta < 1, "session.budget_delta", "in (0, 1)", self.budget_delta)
        require(bool(self.ledger_dir), "session.ledger_dir", "a folder path", self.ledger_dir)

    @property
    def steps_per_epoch(self) -> int:
        """DP-SGD steps that look at every session once in expectation: ``round(1 / q)``."""
        return max(1, round(1 / self.sample_rate))


@dataclass(frozen=True)
class PartnerDP:
    """Partner-level DP with Flower's wrappers: fixed or adaptive (Andrew et al. 2021) clipping,
    done by the partners (``client``) or by the coordinator (``server``, a trusted one)."""

    noise_multiplier: float = 1.0  # noise std / clip norm, on the sum of the sampled updates
    clipping: str = "fixed"
    side: str = "client"
    clip_norm: float = 1.0  # fixed: the L2 bound of an update; adaptive: the initial bound
    target_quantile: float = 0.5  # adaptive: share of updates the bound should leave unclipped
    clip_norm_lr: float = 0.2  # adaptive: geometric step of the bound per round
    clipped_count_stddev: float | None = None  # adaptive: noise on the clipped count (Flower's)

    def __post_init__(self) -> None:
        require(self.noise_multiplier > 0, "partner.noise_multiplier", "> 0", self.noise_multiplier)
        require(
            self.clipping in CLIPPINGS, "partner.clipping", f"one of {CLIPPINGS}", self.clipping
        )
        require(self.side in SIDES, "partner.side", f"one of {SIDES}", self.side)
        require(self.clip_norm > 0, "partner.clip_norm", "> 0", self.clip_norm)
        require(
            0 <= self.target_quantile <= 1,
            "partner.target_quantile",
            "in [0, 1]",
            self.target_quantile,
        )
        require(self.clip_norm_lr > 0, "partner.clip_norm_lr", "> 0", self.clip_norm_lr)


@dataclass(frozen=True)
class PrivacySettings:
    """Both levels, each off when None, and the δ every reported ε is computed at."""

    delta: float = 1e-5
    session: SessionDP | None = None
    partner: PartnerDP | None = None

    def __post_init__(self) -> None:
        require(0 < self.delta < 1, "privacy.delta", "in (0, 1)", self.delta)

    @property
    def enabled(self) -> bool:
        return self.session is not None or self.partner is not None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PrivacySettings:
        """From plain values (a resolved ``privacy`` config group); unknown keys are refused."""
        known = {"delta", "session", "partner"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"privacy keys must be among {sorted(known)}, got {unknown}")
        session, partner = values.get("session"), values.get("partner")
        try:
            return cls(
                delta=float(values.get("delta", cls.delta)),
                session=None if session is None else SessionDP(**session),
                partner=None if partner is None else PartnerDP(**partner),
            )
        except TypeError as error:
            raise ConfigError(f"privacy settings must use known keys, got {error}") from None


def check_combination(
    privacy: PrivacySettings, *, secagg: bool, count_model: bool, strategy: str, funnel: bool
) -> None:
    """Refuse, before anything starts, what fedpath cannot make private (module doc)."""
    if privacy.enabled and funnel:
        raise ConfigError(
            "funnel must be off with differential privacy (funnel=off): the federated funnel "
            "releases exact counts of every session, which no DP level here covers"
        )
    partner = privacy.partner
    if partner is not None and count_model:
        raise ConfigError(
            "privacy.partner must be off for count models: their sum must be exact, and "
            "clipping a partner's counts would change it; use privacy.session for counts"
        )
    if partner is not None and secagg and (partner.side, partner.clipping) != ("client", "fixed"):
        raise ConfigError(
            f"privacy.partner under SecAgg+ must be side=client, clipping=fixed, got "
            f"side={partner.side}, clipping={partner.clipping}: the coordinator only sees the "
            f"sum, so it cannot clip, and adaptive clipping sends each partner's clipped bit in "
            f"the clear; use secagg=off for these (a trusted coordinator)"
        )
    if privacy.session is not None and not count_model and strategy == "fedprox":
        raise ConfigError(
            "strategy must not be 'fedprox' with privacy.session for neural models: DP-SGD "
            "bounds each session's gradient, and the proximal term is not part of it"
        )
