"""(ε, δ) of repeated sampled Gaussian mechanisms, from Opacus's Rényi-DP accountant.

Every DP mechanism in fedpath is one of these: DP-SGD over a partner's sessions (each step a
Gaussian on a Poisson sample of sessions), the Gaussian on count arrays (sample rate 1), and
partner-level DP (each round a Gaussian on the sum of a sample of partners' clipped updates).
So one function accounts for all of them, and it is a library's, not ours: Opacus's RDP
analysis (Mironov 2017; Mironov, Talwar & Zhang 2019 for the subsampled Gaussian) with its
conversion to (ε, δ) of Balle et al. 2020. Opacus (and torch under it) is imported on first
use, so a run without DP never loads it.
"""

from __future__ import annotations

import math

from fedpath.errors import require


def epsilon(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """ε after ``steps`` Gaussian releases of noise ``noise_multiplier`` × sensitivity, each on a
    Poisson sample of rate ``sample_rate`` (1 = everyone, no amplification), at ``delta``.

    Zero steps spend nothing; zero noise protects nothing (``inf``).
    """
    require(noise_multiplier >= 0, "noise_multiplier", ">= 0", noise_multiplier)
    require(0 < sample_rate <= 1, "sample_rate", "in (0, 1]", sample_rate)
    require(isinstance(steps, int) and steps >= 0, "steps", "an integer >= 0", steps)
    require(0 < delta < 1, "delta", "in (0, 1)", delta)
    if steps == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, sample_rate, steps)]
    return float(accountant.get_epsilon(delta))


def noise_for_epsilon(*, epsilon: float, sample_rate: float, steps: int, delta: float) -> float:
    """The noise multiplier whose ``steps`` releases spend ``epsilon`` (within 1%), at ``delta``.

    For choosing a setting from a target budget (benchmarks, configs); Opacus searches it.
    """
    require(epsilon > 0, "epsilon", "> 0", epsilon)
    require(isinstance(steps, int) and steps >= 1, "steps", "an integer >= 1", steps)
    from opacus.accountants.utils import get_noise_multiplier

    return float(
        get_noise_multiplier(
            target_epsilon=epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant="rdp",
        )
    )
