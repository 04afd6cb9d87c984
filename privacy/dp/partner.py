"""Partner-level DP with Flower's own pieces: a strategy wrapper on the coordinator, clipping
mods on the partners, and, under SecAgg+, the noise added by the partners themselves.

Flower's client-side wrappers add the noise to the aggregate on the coordinator, which therefore
sees the clean sum first: fine for a trusted coordinator, not for SecAgg+, whose point is that
the coordinator is not trusted with more than the sum. So under SecAgg+ the wrapper runs with
noise multiplier 0 (it still broadcasts the clipping norm and discards rounds with failures),
and each of the m sampled partners adds ``N(0, (σC)²/m)`` to its clipped update before it is
masked: the unmasked sum carries ``N(0, (σC)²)``, and the mean the same ``σC/m`` that Flower's
wrapper would have added (McMahan et al. 2018 with distributed noise). Without SecAgg+ every
Flower variant runs as Flower ships it (``conf/privacy/partner_*.yaml``).

The mean must be unweighted for the sensitivity ``C/m`` to hold, so partners report weight 1.
Mods act on training only; the funnel round (also a fit) is refused with DP on, elsewhere.
"""

from __future__ import annotations

import math

import numpy as np
from flwr.client.mod import adaptiveclipping_mod, fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.common import (
    Context,
    Message,
    MessageType,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.compat.common import recorddict_compat as compat
from flwr.server.strategy import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    Strategy,
)

from fedpath.privacy.dp.config import PartnerDP


def partner_noise_std(settings: PartnerDP, sampled: int) -> float:
    """Each partner's share of the noise under SecAgg+: std ``σC/√m`` for ``m`` sampled."""
    return settings.noise_multiplier * settings.clip_norm / math.sqrt(sampled)


def wrap_strategy(
    strategy: Strategy, settings: PartnerDP, *, secagg: bool, sampled: int
) -> Strategy:
    """``strategy`` inside the Flower DP wrapper ``settings`` names (module doc)."""
    if settings.clipping == "fixed":
        wrapper = (
            DifferentialPrivacyClientSideFixedClipping
            if settings.side == "client"
            else DifferentialPrivacyServerSideFixedClipping
        )
        noise = 0.0 if secagg else settings.noise_multiplier  # partners add it under SecAgg+
        return wrapper(strategy, noise, settings.clip_norm, sampled)
    wrapper = (
        DifferentialPrivacyClientSideAdaptiveClipping
        if settings.side == "client"
        else DifferentialPrivacyServerSideAdaptiveClipping
    )
    return wrapper(
        strategy,
        settings.noise_multiplier,
        sampled,
        initial_clipping_norm=settings.clip_norm,
        target_clipped_quantile=settings.target_quantile,
        clip_norm_lr=settings.clip_norm_lr,
        clipped_count_stddev=settings.clipped_count_stddev,
    )


def client_mods(settings: PartnerDP, *, noise_std: float) -> list[Mod]:
    """The partners' mods, innermost last: noise (if any) is added after clipping."""
    if settings.side == "server":
        return []
    clip = fixedclipping_mod if settings.clipping == "fixed" else adaptiveclipping_mod
    return [gaussian_noise_mod(noise_std), clip] if noise_std > 0 else [clip]


def gaussian_noise_mod(std: float) -> Mod:
    """A mod adding ``N(0, std²)`` to every weight of a training reply, from OS entropy."""

    def noise_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        if msg.metadata.message_type != MessageType.TRAIN:
            return call_next(msg, context)
        out = call_next(msg, context)
        if out.has_error():
            return out
        fit_res = compat.recorddict_to_fitres(out.content, keep_input=True)
        rng = np.random.default_rng()
        fit_res.parameters = ndarrays_to_parameters(
            [
                array + rng.normal(0.0, std, array.shape).astype(array.dtype)
                for array in parameters_to_ndarrays(fit_res.parameters)
            ]
        )
        out.content = compat.fitres_to_recorddict(fit_res, keep_input=True)
        return out

    return noise_mod
