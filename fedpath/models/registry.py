"""Model names -> classes, imported lazily so that asking for a count model never imports torch."""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import Any

from fedpath.errors import ConfigError
from fedpath.models.base import NextStepModel
from fedpath.settings_types import annotated_types, check_types
from fedpath.yamlconf import packaged_yaml

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


def model_defaults(name: str) -> dict[str, Any]:
    """The hyper-parameters ``conf/model/<name>.yaml`` ships: the one source of a model's defaults.

    A model built from code and one built by the CLI from its Hydra config start from the same
    values, so a default cannot be decided in the YAML and contradicted in a constructor. A fresh
    copy each call: a caller changing it cannot change the next model's defaults.
    """
    model_class(name)  # an unknown name is refused before any file is read
    return dict(_shipped_defaults(name))


@cache
def _shipped_defaults(name: str) -> dict[str, Any]:
    defaults = packaged_yaml("model", f"{name}.yaml")
    defaults.pop("name")
    return defaults


def build_model(name: str, *, n_items: int, seed: int = 0, **params: Any) -> NextStepModel:
    """A fresh, unfitted model: ``conf/model/<name>.yaml``'s values, overridden by ``params``."""
    cls = model_class(name)
    defaults = model_defaults(name)
    unknown = sorted(set(params) - set(defaults) - set(getattr(cls, "unsaved_params", ())))
    if unknown:
        raise ConfigError(
            f"model.{unknown[0]} is not a {name} hyper-parameter; its keys are {sorted(defaults)}"
        )
    check_types(params, annotated_types(cls), "model")
    return cls(n_items=n_items, seed=seed, **{**defaults, **params})
