"""The accountant (privacy/dp/accountant.py) and the per-round ledger charges (privacy/dp/budget.py,
privacy/dp/client.py): ε is a real RDP bound, and a run charges exactly its ε, round by round."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from fedpath.privacy.dp.accountant import epsilon, noise_for_epsilon
from fedpath.privacy.dp.budget import PrivacyRefusal, refused_partner
from fedpath.privacy.dp.client import PartnerPrivacy, ledger_path, session_epsilon
from fedpath.privacy.dp.config import PrivacySettings, SessionDP
from fedpath.privacy.dp.ledger import PrivacyLedger

DELTA = 1e-5


def _exact_gaussian_epsilon(sigma: float, delta: float) -> float:
    """The tight ε of one Gaussian release (Balle & Wang 2018, Theorem 8), solved numerically:
    δ = Φ(1/(2σ) − εσ) − e^ε Φ(−1/(2σ) − εσ)."""

    def gap(eps: float) -> float:
        return (
            norm.cdf(1 / (2 * sigma) - eps * sigma)
            - math.exp(eps) * norm.cdf(-1 / (2 * sigma) - eps * sigma)
            - delta
        )

    return brentq(gap, 0.0, 50.0)


@pytest.mark.parametrize("sigma", [0.8, 1.0, 2.0, 4.0])
def test_one_gaussian_release_is_bounded_above_the_exact_epsilon_and_close_to_it(sigma):
    # Prepare
    exact = _exact_gaussian_epsilon(sigma, DELTA)
    # Execute
    bound = epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=1, delta=DELTA)
    # Assert: a valid bound is never below the tight value; RDP is within about 10% of it
    assert exact <= bound <= 1.15 * exact


def test_composing_gaussians_equals_one_gaussian_of_the_combined_noise():
    # Prepare: 16 releases at σ = 2 are exactly one release at σ = 2 / √16 = 0.5 (Rényi DP adds)
    # Execute
    composed = epsilon(noise_multiplier=2.0, sample_rate=1.0, steps=16, delta=DELTA)
    single = epsilon(noise_multiplier=0.5, sample_rate=1.0, steps=1, delta=DELTA)
    # Assert
    assert composed == pytest.approx(single, rel=1e-9)


def test_epsilon_grows_with_steps_shrinks_with_noise_and_with_sampling():
    # Prepare / Execute
    by_steps = [
        epsilon(noise_multiplier=1.0, sample_rate=0.1, steps=t, delta=DELTA) for t in (1, 10, 100)
    ]
    by_noise = [
        epsilon(noise_multiplier=s, sample_rate=0.1, steps=50, delta=DELTA) for s in (0.7, 1.0, 2.0)
    ]
    by_rate = [
        epsilon(noise_multiplier=1.0, sample_rate=q, steps=50, delta=DELTA)
        for q in (1.0, 0.1, 0.01)
    ]
    # Assert
    assert by_steps == sorted(by_steps) and len(set(by_steps)) == 3
    assert by_noise == sorted(by_noise, reverse=True) and len(set(by_noise)) == 3
    assert by_rate == sorted(by_rate, reverse=True) and len(set(by_rate)) == 3
    assert epsilon(noise_multiplier=1.0, sample_rate=0.1, steps=0, delta=DELTA) == 0.0


def test_the_noise_for_a_target_epsilon_spends_that_epsilon():
    # Prepare / Execute
    sigma = noise_for_epsilon(epsilon=8.0, sample_rate=0.2, steps=10, delta=DELTA)
    # Assert
    spent = epsilon(noise_multiplier=sigma, sample_rate=0.2, steps=10, delta=DELTA)
    assert spent == pytest.approx(8.0, rel=0.01) and spent <= 8.0


def _privacy(tmp_path: Path, budget: float) -> PartnerPrivacy:
    session = SessionDP(
        noise_multiplier=1.0, sample_rate=0.25, budget_epsilon=budget, ledger_dir=str(tmp_path)
    )
    return PartnerPrivacy(
        settings=PrivacySettings(delta=DELTA, session=session),
        run_id="run-a",
        n_partners=2,
        sampled=2,
        secagg=True,
    )


def test_a_runs_charges_add_up_to_its_epsilon_and_charge_delta_once(tmp_path: Path):
    # Prepare: DP-SGD, q = 1/4 (4 steps per epoch), 2 local epochs per round
    privacy = _privacy(tmp_path, budget=100.0)
    # Execute: three rounds
    reported = [privacy.charge(3, epochs_per_round=2, count_model=False) for _ in range(3)]
    # Assert
    ledger = PrivacyLedger(ledger_path(privacy.session, 3), 100.0, 1e-3)
    expected = [session_epsilon(privacy.session, epochs=2 * k, delta=DELTA) for k in (1, 2, 3)]
    assert reported == pytest.approx(expected)
    assert expected[2] == pytest.approx(
        epsilon(noise_multiplier=1.0, sample_rate=0.25, steps=24, delta=DELTA)
    )
    assert ledger.spent() == pytest.approx(expected[2])
    assert [c.data["delta"] for c in ledger.charges()] == [DELTA, 0.0, 0.0]


def test_a_count_models_rounds_are_gaussian_releases(tmp_path: Path):
    # Prepare
    privacy = _privacy(tmp_path, budget=100.0)
    # Execute
    first = privacy.charge(0, epochs_per_round=5, count_model=True)
    second = privacy.charge(0, epochs_per_round=5, count_model=True)
    # Assert: epochs do not matter to counts; each round is one release of σ = 1
    assert first == pytest.approx(
        epsilon(noise_multiplier=1.0, sample_rate=1.0, steps=1, delta=DELTA)
    )
    assert second == pytest.approx(
        epsilon(noise_multiplier=1.0, sample_rate=1.0, steps=2, delta=DELTA)
    )


def test_a_round_past_the_budget_is_refused_and_charges_nothing(tmp_path: Path):
    # Prepare: the budget covers one round's ε but not two
    one_round = session_epsilon(_privacy(tmp_path, 1.0).session, epochs=1, delta=DELTA)
    two_rounds = session_epsilon(_privacy(tmp_path, 1.0).session, epochs=2, delta=DELTA)
    privacy = _privacy(tmp_path, budget=(one_round + two_rounds) / 2)
    privacy.charge(1, epochs_per_round=1, count_model=False)
    # Execute
    with pytest.raises(PrivacyRefusal) as refusal:
        privacy.charge(1, epochs_per_round=1, count_model=False)
    # Assert: the refusal names the partner in a form the coordinator reads back from a failure
    ledger = PrivacyLedger(ledger_path(privacy.session, 1), 100.0, 1e-3)
    assert ledger.spent() == pytest.approx(one_round)
    assert len(ledger.charges()) == 1
    assert refusal.value.partner == 1
    assert "refuses to spend epsilon" in str(refusal.value)
    flower_failure = Exception(f"<class 'ClientAppException'>:<'{refusal.value}'>")
    assert refused_partner(flower_failure) == 1
    assert refused_partner(Exception("partner 1 drops out of round 2 (simulated fault)")) is None
