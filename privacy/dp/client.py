"""A run's differential privacy as one partner applies it, in one object the partner carries.

The federation builds it once per run (``simulations/federation.py``) and every partner process gets
it in its client settings; the partner then charges its budget, trains privately or noises its
counts, and adds its mods, without knowing how the coordinator was set up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from flwr.clientapp.typing import Mod

from fedpath.data.containers import Cases
from fedpath.privacy.dp import accountant
from fedpath.privacy.dp.budget import PrivacyRefusal, charge_round, rounds_charged
from fedpath.privacy.dp.config import PrivacySettings, SessionDP
from fedpath.privacy.dp.counts import cap_session_cases, count_sensitivity, noisy_counts
from fedpath.privacy.dp.ledger import PrivacyLedger
from fedpath.privacy.dp.partner import client_mods, partner_noise_std
from fedpath.privacy.errors import LedgerCorruptError

if TYPE_CHECKING:
    from fedpath.privacy.dp.session import SessionDPSGD


def session_epsilon(settings: SessionDP, *, epochs: int, delta: float) -> float:
    """ε of ``epochs`` epochs of DP-SGD under ``settings``, over all of a run's rounds."""
    return accountant.epsilon(
        noise_multiplier=settings.noise_multiplier,
        sample_rate=settings.sample_rate,
        steps=epochs * settings.steps_per_epoch,
        delta=delta,
    )


def ledger_path(settings: SessionDP, partner: int) -> Path:
    """Partner ``partner``'s ledger: kept across runs, one file per partner."""
    return Path(settings.ledger_dir) / f"partner-{partner:04d}.jsonl"


@dataclass(frozen=True)
class PartnerPrivacy:
    """What a partner needs to apply the run's DP on its own: the settings, the run's id (its
    ledger charges are keyed by it), and the run's size and SecAgg+ state, which decide the
    partner's share of the noise (``n_partners`` for counts, ``sampled`` per round for updates).
    """

    settings: PrivacySettings
    run_id: str
    n_partners: int
    sampled: int
    secagg: bool

    @property
    def session(self) -> SessionDP:
        if self.settings.session is None:
            raise ValueError("privacy.session must be set for session-level DP, got None")
        return self.settings.session

    def mods(self) -> list[Mod]:
        """Partner-level clipping (and, under SecAgg+, each partner's share of the noise)."""
        partner = self.settings.partner
        if partner is None:
            return []
        distributed = self.secagg and partner.side == "client"
        std = partner_noise_std(partner, self.sampled) if distributed else 0.0
        return client_mods(partner, noise_std=std)

    def charge(self, partner: int, *, epochs_per_round: int, count_model: bool) -> float:
        """Charge this partner's ledger for one more round; return the run's ε after it.

        Raises ``PrivacyRefusal`` when the round does not fit the partner's budget, and when
        the ledger cannot be trusted (it may have lost spending) until an operator acts.
        """
        session = self.session
        path = ledger_path(session, partner)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            ledger = PrivacyLedger(
                path,
                session.budget_epsilon,
                session.budget_delta,
                partner=f"partner-{partner}",
            )
        except LedgerCorruptError as error:
            raise PrivacyRefusal(partner, str(error)) from None
        rounds = rounds_charged(ledger, self.run_id) + 1
        epsilon, mechanism = self.epsilon_after(
            rounds, epochs_per_round=epochs_per_round, count_model=count_model
        )
        charge_round(
            ledger,
            partner=partner,
            run_id=self.run_id,
            epsilon_after=epsilon,
            delta=self.settings.delta,
            note=f"round {rounds} of run {self.run_id}: {mechanism}",
        )
        return epsilon

    def epsilon_after(
        self, rounds: int, *, epochs_per_round: int, count_model: bool
    ) -> tuple[float, str]:
        """The run's session-level ε once ``rounds`` rounds are trained, and the mechanism's
        description: what a partner charges up to, and (for every round) what a run may."""
        session = self.session
        if count_model:
            epsilon = accountant.epsilon(
                noise_multiplier=session.noise_multiplier,
                sample_rate=1.0,
                steps=rounds,
                delta=self.settings.delta,
            )
            return epsilon, f"gaussian counts sigma={session.noise_multiplier}"
        epsilon = session_epsilon(
            session, epochs=rounds * epochs_per_round, delta=self.settings.delta
        )
        mechanism = (
            f"dp-sgd sigma={session.noise_multiplier} C={session.clip_norm} q={session.sample_rate}"
        )
        return epsilon, mechanism

    def training(self) -> SessionDPSGD:
        """DP-SGD over this partner's sessions, for a neural model's ``private`` parameter."""
        from fedpath.privacy.dp.session import SessionDPSGD  # torch: neural partners only

        return SessionDPSGD(self.session)

    def count_cases(self, cases: Cases) -> Cases:
        """The cases a count model may count: at most ``max_session_cases`` per session."""
        return cap_session_cases(cases, self.session.max_session_cases)

    def noise_counts(self, counts: Sequence[np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
        """``counts`` with this partner's share of the Gaussian noise (``dp_counts`` module)."""
        session = self.session
        sensitivity = count_sensitivity(names, session.max_session_cases)
        share = 1.0 / self.n_partners if self.secagg else 1.0
        std = session.noise_multiplier * sensitivity * share**0.5
        return noisy_counts(counts, std, np.random.default_rng())
