"""Settings checked against their annotated types (fedpath/settings_types.py): a typo in an
override is refused by key before a constructor compares a string with a number."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from fedpath.errors import ConfigError
from fedpath.models.registry import build_model
from fedpath.settings_types import annotated_types, check_types


@dataclass(frozen=True)
class Knobs:
    rounds: int = 1
    rate: float = 0.5
    secure: bool = True
    name: str = "x"
    timeout: float | None = None
    cells: int | str = "auto"
    mode: Literal["on", "off"] = "on"


GOOD = {
    "rounds": 3,
    "rate": 1,  # an integer is a number
    "secure": False,
    "name": "y",
    "timeout": None,
    "cells": 4096,
    "mode": "off",
}


def test_values_of_their_annotated_types_pass() -> None:
    check_types(GOOD, annotated_types(Knobs), "knobs")  # Execute / Assert: no error
    check_types({**GOOD, "timeout": 2.5, "cells": "auto"}, annotated_types(Knobs), "knobs")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("rounds", 2.5, "knobs.rounds must be an integer, got 2.5"),
        ("rounds", True, "knobs.rounds must be an integer, got True"),
        ("rate", "fast", "knobs.rate must be a number, got 'fast'"),
        ("secure", "yes", "knobs.secure must be true or false, got 'yes'"),
        ("name", 3, "knobs.name must be a string, got 3"),
        ("timeout", "soon", "knobs.timeout must be a number or null, got 'soon'"),
        ("cells", 2.5, "knobs.cells must be an integer or a string, got 2.5"),
        ("mode", "auto", "knobs.mode must be one of 'on', 'off', got 'auto'"),
    ],
)
def test_a_value_of_another_type_is_refused_by_key(key, value, message) -> None:
    with pytest.raises(ConfigError) as raised:
        check_types({**GOOD, key: value}, annotated_types(Knobs), "knobs")
    assert str(raised.value) == message


def test_a_models_hyper_parameters_are_judged_by_its_constructors_annotations() -> None:
    # Execute / Assert: inherited annotations count (lr is the neural base's, hidden_size GRU4Rec's)
    with pytest.raises(ConfigError, match=r"model\.lr must be a number, got 'fast'"):
        build_model("gru4rec", n_items=5, lr="fast")
    with pytest.raises(ConfigError, match=r"model\.hidden_size must be an integer, got 1\.5"):
        build_model("gru4rec", n_items=5, hidden_size=1.5)
    assert build_model("gru4rec", n_items=5, lr=1).lr == 1
