"""Exact sums of partners' counts through an aggregation that only computes weighted means.

SecAgg+ (Flower 1.42) reveals one thing to the server: the ``num_examples``-weighted mean of the
partners' arrays, each clipped to ``[-c, c]``, shifted by ``c`` and stochastically rounded to an
integer grid of ``T`` steps over ``2c``. Count models need the plain SUM, bit for bit. The
encoding below makes every step of that pipeline exact:

* each partner reports weight 1 and sends ``counts / S`` with ``S`` a public power of two, and
  the server runs SecAgg+ with ``c = 1``, ``T = 2S``, ``max_weight = 1``; the weight factor is
  then exactly 1 and the quantized value is ``(counts / S + 1) * S = counts + S``, an integer,
  so the stochastic rounding has nothing to round;
* the server recovers ``sum(counts + S)`` modulo ``M`` (the masks' modulus); it is the true sum
  as long as ``N * 2S < M``, which fixes ``S`` from ``N`` and ``M``; the int32 the quantizer
  casts to bounds ``S <= 2**29``;
* dequantizing multiplies by ``1/S`` (a power of two, exact) and subtracts ``N`` (exact: the
  result lies on the ``1/S`` grid and below ``2**53 / S``); dividing by ``N`` to form the mean
  is the only rounding, a relative ``2**-52``; ``rint(mean * N * S)`` removes it while the sums
  stay below about ``2**50``.

Without SecAgg+ the same encoding goes through a plain mean, so a run differs in one place only.
A count above ``S`` would be clipped silently, so partners refuse to send one.

Sums of non-negative floats (the calibration round's NLL sums, the funnel's predicted
conversions) ride on the same exact count sum in fixed point: each partner rounds ``x`` to the
integer ``q = rint(x * 2**FRACTION_BITS)`` and sends ``q`` as ``DIGITS`` base-``S`` digits, each
a count in ``[0, S)``. Digit sums are exact, so the server rebuilds ``sum(q)`` exactly; the only
error is each partner's rounding, at most ``2**-(FRACTION_BITS + 1)`` per value, hence at most
``N * 2**-21`` (under 5e-7 for N = 1000) on a summed value, plus float64's own 2**-53 relative
rounding of the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import FedAvg

from fedpath.strategies.flower_types import FitAggregate, FitFailures, FitResults

DEFAULT_MODULUS = 2**32  # SecAggPlusWorkflow's default modulus_range
MAX_SCALE = 2**29  # quantized values (counts + S <= 2S) must fit the quantizer's int32
CLIPPING_RANGE = 1.0  # counts / S lie in [0, 1]
MAX_WEIGHT = 1.0  # every partner reports weight 1: the weight factor is exactly 1
FRACTION_BITS = 20  # fixed point: a float sum travels in steps of 2**-20
DIGITS = 3  # base-S digits per fixed-point value: room for values up to S**3 / 2**20


def count_scale(n_partners: int, modulus_range: int = DEFAULT_MODULUS) -> int:
    """The largest power of two ``S`` with ``n_partners * 2S < modulus_range`` (and <= 2**29)."""
    if n_partners < 1:
        raise ValueError(f"n_partners must be >= 1, got {n_partners}")
    room = (modulus_range - 1) // (2 * n_partners)
    if room < 1:
        raise ValueError(
            f"modulus_range must exceed 2 * n_partners = {2 * n_partners} to sum counts, "
            f"got {modulus_range}"
        )
    return min(1 << (room.bit_length() - 1), MAX_SCALE)


def quantization_range(scale: int) -> int:
    """The SecAgg+ ``quantization_range`` under which ``counts / S`` quantizes to ``counts + S``."""
    return 2 * scale


def encode_counts(counts: Sequence[np.ndarray], scale: int) -> list[np.ndarray]:
    """``counts / S`` in float64, refusing anything that would not come back exactly."""
    encoded = []
    for index, array in enumerate(counts):
        values = np.asarray(array)
        if values.size and (
            not np.array_equal(values, np.rint(values)) or values.min() < 0 or values.max() > scale
        ):
            raise ValueError(
                f"count array {index} must hold integers in [0, {scale}] to be summed exactly, "
                f"got values in [{values.min()}, {values.max()}]"
            )
        encoded.append(values.astype(np.float64) / scale)
    return encoded


def encode_fixed(values: np.ndarray, scale: int) -> list[np.ndarray]:
    """Non-negative floats as ``DIGITS`` base-``S`` digit arrays of their fixed-point integers,
    encoded for the exact sum (``[all digits 0, all digits 1, ...]`` in one array)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    limit = min(scale**DIGITS, 2**62) / 2**FRACTION_BITS
    if values.size and not (
        np.isfinite(values).all() and values.min() >= 0 and values.max() < limit
    ):
        raise ValueError(
            f"values must be finite and in [0, {limit:.3g}) to be summed in fixed point, "
            f"got values in [{values.min()}, {values.max()}]"
        )
    fixed = np.rint(values * 2**FRACTION_BITS).astype(np.int64)
    digits = [(fixed // scale**d) % scale for d in range(DIGITS)]
    return encode_counts([np.concatenate(digits)], scale)


def decode_fixed(digit_sums: np.ndarray, scale: int) -> np.ndarray:
    """The float sums behind summed ``encode_fixed`` digits (``decode_sum``'s output)."""
    sums = np.asarray(digit_sums, dtype=np.float64).reshape(DIGITS, -1)
    exact = [  # python ints: N * S**DIGITS may exceed int64
        sum(int(sums[d, i]) * scale**d for d in range(DIGITS)) for i in range(sums.shape[1])
    ]
    return np.array([q / 2**FRACTION_BITS for q in exact], dtype=np.float64)


def decode_sum(mean: Sequence[np.ndarray], n_partners: int, scale: int) -> list[np.ndarray]:
    """The integer sum behind a mean of ``n_partners`` encoded count arrays."""
    return [np.rint(np.asarray(m, dtype=np.float64) * (n_partners * scale)) for m in mean]


class SecureSum(FedAvg):
    """FedAvg's mean turned back into the sum of the partners' counts.

    Partners must send ``encode_counts(...)`` with weight 1. The number of summed partners is the
    number of results: under SecAgg+ each result carries the same already-aggregated mean.
    """

    def __init__(self, *, scale: int, **fedavg_args: object) -> None:
        super().__init__(**fedavg_args)  # type: ignore[arg-type]
        self.scale = scale

    def __repr__(self) -> str:
        return f"SecureSum(scale={self.scale})"

    def aggregate_fit(
        self, server_round: int, results: FitResults, failures: FitFailures
    ) -> FitAggregate:
        mean, metrics = super().aggregate_fit(server_round, results, failures)
        if mean is None:
            return None, metrics
        total = decode_sum(parameters_to_ndarrays(mean), len(results), self.scale)
        return ndarrays_to_parameters(self.released(total)), metrics

    def released(self, total: list[np.ndarray]) -> list[np.ndarray]:
        """The sum as the server releases it: exact here; a subclass may post-process it."""
        return total


class NonNegativeSum(SecureSum):
    """The secure sum of noisy counts, clipped at 0: a count below zero is only noise."""

    def released(self, total: list[np.ndarray]) -> list[np.ndarray]:
        return [np.maximum(array, 0) for array in total]
