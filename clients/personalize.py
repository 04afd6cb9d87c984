"""Personalization: a partner adapts the federation's model to its own traffic, locally.

FedPer / FedRep style: the global model is a shared base, and a partner may tune its output
layers on its own cases and serve that copy. Nothing is sent back; the server's model is
untouched. A partner keeps its copy only if its own validation cases say it is no worse, since a
few epochs on a small local log can also overfit.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Cases, Partner
from fedpath.errors import ConfigError
from fedpath.evaluate import evaluate
from fedpath.federation.config import FederationConfig
from fedpath.models.base import NextStepModel
from fedpath.models.neural import VALID_K, NeuralNextStepModel

SELECTION_METRIC = f"recall@{VALID_K}"  # what a partner's valid cases judge a copy on


@dataclass(frozen=True)
class PersonalScores:
    """One partner's metrics on its own held-out cases, before and after adapting."""

    partner: int
    name: str
    shared: dict[str, float]  # the global model
    personalized: dict[str, float]  # the model the partner keeps (the global one if not adopted)
    adopted: bool  # the tuned copy was no worse on the partner's own valid cases


def personalize(
    model: NextStepModel, cases: Mapping[str, Cases], *, epochs: int
) -> tuple[NeuralNextStepModel, bool]:
    """A copy of ``model`` with its output layers tuned on ``cases["train"]``, and whether the
    partner should keep it (its ``SELECTION_METRIC`` on ``cases["valid"]`` is not lower)."""
    if not isinstance(model, NeuralNextStepModel):
        raise ConfigError(
            f"personalization needs a neural model (output layers to tune), got {model.name!r}"
        )
    tuned = copy.deepcopy(model)
    tuned.fine_tune_heads(cases["train"], cases["valid"], epochs=epochs)
    before = evaluate(model, cases["valid"], ks=(VALID_K,))[SELECTION_METRIC]
    after = evaluate(tuned, cases["valid"], ks=(VALID_K,))[SELECTION_METRIC]
    return tuned, not math.isnan(after) and not after < before


def personalization_scores(
    model: NextStepModel, partners: Sequence[Partner], config: FederationConfig
) -> list[PersonalScores]:
    """Global vs personalized metrics for every partner, on its ``personalization.split``.

    In a simulation this runs where the partners' data is; in a deployment each partner runs
    ``personalize`` on its own machine and only the partner sees these figures.
    """
    settings = config.personalization
    if settings.epochs < 1:
        raise ConfigError(
            f"personalization.epochs must be >= 1 to personalize, got {settings.epochs}"
        )
    scores = []
    for partner in partners:
        cases = {
            name: expand_prefixes(getattr(partner.data, name), max_len=config.max_len)
            for name in ("train", "valid", "test")
        }
        tuned, adopted = personalize(model, cases, epochs=settings.epochs)
        held_out = cases[settings.split]
        shared = evaluate(model, held_out, ks=config.ks, review_threshold=config.review_threshold)
        own = (
            evaluate(tuned, held_out, ks=config.ks, review_threshold=config.review_threshold)
            if adopted
            else shared
        )
        scores.append(PersonalScores(partner.index, partner.name, shared, own, adopted))
    return scores
