"""Session-level DP for the count models: the Gaussian mechanism on the partners' secure sum.

Sensitivity. A partner counts at most ``L = max_session_cases`` cases of any session (the first
L; the rest of a longer session is not counted), so adding or removing one session changes the
count arrays by at most (L2, each array a sum of unit increments, whose L2 norm is at most
their number):

* ``item_counts``: the first item and the next item of each kept case, at most L + 1;
* ``action_counts``, ``conversion_counts``: one per kept case, at most L each;
* ``transitions`` (Markov): one per kept case with a next item, at most L;
* ``cooc`` (co-occurrence): 1 for each ordered pair of the session's distinct items, of which
  there are at most L + 1, so sqrt((L + 1) L).

``count_sensitivity`` is the L2 norm of those bounds over the model's arrays.

Distributed noise. Under SecAgg+ the coordinator only sees the sum, so each of the n partners
adds ``N(0, σ²Δ²/n)`` per entry and the sum carries ``N(0, σ²Δ²)``: the Gaussian mechanism of
noise multiplier σ (one release per round). Without SecAgg+ the coordinator sees every
partner's counts, so each partner adds the whole ``N(0, σ²Δ²)`` itself. Each partner rounds its
noised counts to integers (negative ones included) so the exact secure sum still applies; the
coordinator clips the sum at 0 afterwards (post-processing, which costs no privacy). The
accountant treats the sum of n rounded Gaussians as one Gaussian of the same variance, which
is an approximation (a rigorous treatment is the distributed discrete Gaussian of Kairouz,
Liu & Steinke 2021); with σΔ/√n well above 1, as in every setting fedpath ships, the two are
numerically indistinguishable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fedpath.data.containers import Cases


def session_bounds(max_cases: int) -> dict[str, float]:
    """L2 bound, per count array, of what one session of at most ``max_cases`` cases adds."""
    cases = float(max_cases)
    return {
        "item_counts": cases + 1,
        "action_counts": cases,
        "conversion_counts": cases,
        "transitions": cases,
        "cooc": math.sqrt((cases + 1) * cases),
    }


def count_sensitivity(array_names: Sequence[str], max_cases: int) -> float:
    """Δ: the L2 sensitivity to one session of a count model holding ``array_names``."""
    bounds = session_bounds(max_cases)
    unknown = sorted(set(array_names) - set(bounds))
    if unknown:
        raise ValueError(
            f"count arrays must have a known per-session bound {sorted(bounds)}, got {unknown}"
        )
    return math.sqrt(sum(bounds[name] ** 2 for name in array_names))


def cap_session_cases(cases: Cases, max_cases: int) -> Cases:
    """The first ``max_cases`` cases (shortest prefixes) of every session, the rest dropped."""
    order = np.argsort(cases.session_index, kind="stable")  # a session's cases stay in order
    ids = cases.session_index[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else ids
    runs = np.diff(np.r_[starts, len(ids)])
    position = np.empty(len(ids), dtype=np.int64)
    position[order] = np.arange(len(ids)) - np.repeat(starts, runs)
    return cases.subset(position < max_cases)


def noisy_counts(
    counts: Sequence[np.ndarray], std: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """``counts`` plus Gaussian noise of ``std`` per entry, rounded to integers (may be < 0)."""
    return [
        np.asarray(array, dtype=np.int64)
        + np.rint(rng.normal(0.0, std, np.shape(array))).astype(np.int64)
        for array in counts
    ]


def encode_signed_counts(counts: Sequence[np.ndarray], scale: int) -> list[np.ndarray]:
    """``counts / S`` for integers in ``[-S, S]``: the secure-sum encoding of
    ``strategies/secure_sum.py`` over its whole clipping range ``[-1, 1]``, where a value ``v``
    quantizes exactly to ``v + S`` in ``[0, 2S]``, so negative noisy counts sum exactly too."""
    encoded = []
    for index, array in enumerate(counts):
        values = np.asarray(array)
        if values.size and (
            not np.array_equal(values, np.rint(values)) or np.abs(values).max() > scale
        ):
            raise ValueError(
                f"noisy count array {index} must hold integers in [-{scale}, {scale}], "
                f"got values in [{values.min()}, {values.max()}]"
            )
        encoded.append(values.astype(np.float64) / scale)
    return encoded
