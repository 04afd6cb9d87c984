"""Model names -> classes, imported lazily so that asking for a count model never imports torch."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from fedpath.errors import ConfigError
from fedpath.models.base import NextStepModel

MODELS: dict[str, str] = {
    "popularity": "fedpath.models.popularity:Popularity",
    "markov": "fedpath.models.markov:MarkovChain",
    "cooccurrence": "fedpath.models.cooccurrence:SessionCooccurrence",
    "gru4rec": "fedpath.models.gru4rec:GRU4Rec",
    "sasrec": "fedpath.models.sasrec:SASRec",
    "narm": "fedpath.models.narm:NARM",
}


def model_class(name: str) -> type[NextStepModel]:
    """The class registered under ``name``."""
    if name not in MODELS:
        raise ConfigError(f"model must be one of {sorted(MODELS)}, got {name!r}")
    module_name, class_name = MODELS[name].split(":")
    return getattr(import_module(module_name), class_name)


def build_model(name: str, *, n_items: int, seed: int = 0, **params: Any) -> NextStepModel:
    """A fresh, unfitted model; ``params`` are the keys of ``conf/model/<name>.yaml`` bar name."""
    return model_class(name)(n_items=n_items, seed=seed, **params)
