"""What a run spent in privacy, round by round, as the coordinator can know it.

A strategy wrapper (like Flower's DP wrappers and fedpath's ``RoundRecorder``) that changes
nothing and writes down, per round: the session-level ε each training partner reports (the ε it
charged its own ledger for the run so far), the partners that refused to train for lack of
budget, and the partner-level ε of the aggregate released so far, which only the coordinator
can account (it knows the sample rate and whether a round released anything).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from fedpath.privacy.dp.config import PrivacySettings


@dataclass
class PrivacyRound:
    """One round's privacy: ε are cumulative over the run, at the report's δ."""

    round: int
    released: bool = False  # an aggregate came out of the round (SecAgg+ may halt a round)
    partner_epsilon: float | None = None  # None without partner-level DP
    session_epsilon: dict[int, float] = field(default_factory=dict)  # partner -> its ε so far
    refused: list[int] = field(default_factory=list)  # partners out of budget this round


@dataclass
class PrivacyReport:
    """A run's privacy settings and spending; ``rounds`` in order."""

    settings: PrivacySettings
    sample_rate: float  # partner-level: the share of partners sampled per round
    rounds: list[PrivacyRound] = field(default_factory=list)

    @property
    def session_epsilon(self) -> float | None:
        """The run's session-level ε: the largest any partner reached (None if level off)."""
        if self.settings.session is None:
            return None
        reached = [e for r in self.rounds for e in r.session_epsilon.values()]
        return max(reached, default=0.0)

    @property
    def partner_epsilon(self) -> float | None:
        """The run's partner-level ε after its last released aggregate (None if level off)."""
        if self.settings.partner is None:
            return None
        return next(
            (r.partner_epsilon for r in reversed(self.rounds) if r.partner_epsilon is not None),
            0.0,
        )

    def rows(self) -> list[dict[str, object]]:
        """One flat row per round (the report's table)."""
        return [
            {
                "round": r.round,
                "released": r.released,
                "session_epsilon_max": max(r.session_epsilon.values(), default=None),
                "partners_reporting": len(r.session_epsilon),
                "refused": ", ".join(map(str, r.refused)) or "-",
                "partner_epsilon": r.partner_epsilon,
            }
            for r in self.rounds
        ]

    def summary(self) -> dict[str, object]:
        """The end-of-run figures, for results JSON beside the rounds."""
        return {
            "delta": self.settings.delta,
            "session_epsilon": self.session_epsilon,
            "partner_epsilon": self.partner_epsilon,
            "refusals": sum(len(r.refused) for r in self.rounds),
        }

    def to_dict(self) -> dict[str, object]:
        """Settings, end-of-run figures and every round, in plain JSON types (results, audit)."""
        return {
            **self.summary(),
            "settings": asdict(self.settings),
            "sample_rate": self.sample_rate,
            "rounds": [
                {
                    "round": r.round,
                    "released": r.released,
                    "partner_epsilon": r.partner_epsilon,
                    "session_epsilon": {str(p): e for p, e in sorted(r.session_epsilon.items())},
                    "refused": r.refused,
                }
                for r in self.rounds
            ],
        }

    def headline(self) -> str:
        """One sentence a reader of the report needs first."""
        parts = []
        if self.settings.session is not None:
            parts.append(
                f"session-level ε = {self.session_epsilon:.3g} (the largest any partner charged; "
                f"noise multiplier {self.settings.session.noise_multiplier})"
            )
        if self.settings.partner is not None:
            parts.append(
                f"partner-level ε = {self.partner_epsilon:.3g} (noise multiplier "
                f"{self.settings.partner.noise_multiplier}, {self.settings.partner.side}-side "
                f"{self.settings.partner.clipping} clipping)"
            )
        refusals = self.summary()["refusals"]
        return f"{'; '.join(parts)}; δ = {self.settings.delta:g}; refusals: {refusals}."
