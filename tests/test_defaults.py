"""Code defaults and shipped YAML must agree wherever both exist.

The settings dataclasses are the schema (they validate, and tests and library users build them
directly); each YAML restates the defaults with a comment for the user who reads ``conf/``. This
test is what keeps the two from drifting apart, key by key (model hyper-parameters have a single
source, ``conf/model/``, and their own test in ``test_count_models.py``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedpath.clients.calibration import CalibrationSettings
from fedpath.clients.serving import ServingSettings
from fedpath.clients.supervisor import SupernodeSettings
from fedpath.federation.config import (
    FaultSettings,
    FederationConfig,
    FunnelSettings,
    GateSettings,
    PersonalizationSettings,
    SecAggSettings,
)
from fedpath.privacy.dp.config import PartnerDP, PrivacySettings, SessionDP
from fedpath.simulations.training import TrainSettings

CONF = Path(__file__).resolve().parents[1] / "conf"


def yaml_at(path: str, *section: str) -> dict[str, Any]:
    values = yaml.safe_load((CONF / path).read_text())
    for key in section:
        values = values[key]
    return values


def code_defaults(settings: Any) -> dict[str, Any]:
    """A dataclass instance's values, tuples as the lists YAML writes."""
    return {
        f.name: list(v) if isinstance(v := getattr(settings, f.name), tuple) else v
        for f in dataclasses.fields(settings)
    }


CASES = [
    # (what the code builds with no argument, YAML file, section, keys that differ by design)
    (SecAggSettings(), "secagg/on.yaml", (), ()),
    (SecAggSettings(), "coordinator.yaml", ("secagg",), ()),
    (GateSettings(), "gate/on.yaml", (), ("enabled",)),  # the code default is the off switch
    (GateSettings(), "coordinator.yaml", ("gate",), ()),
    (FunnelSettings(), "funnel/off.yaml", (), ()),
    (FaultSettings(), "faults/none.yaml", (), ()),
    (PersonalizationSettings(), "personalization/off.yaml", (), ()),
    (PrivacySettings(), "privacy/off.yaml", (), ()),
    (SessionDP(), "privacy/session.yaml", ("session",), ("ledger_dir",)),  # YAML: under `out`
    (PartnerDP(), "privacy/partner.yaml", ("partner",), ()),
    (FederationConfig(model="gru4rec"), "simulate.yaml", (), ()),
    (FederationConfig(model="gru4rec"), "coordinator.yaml", ("training",), ()),
    (FederationConfig(model="gru4rec"), "train/default.yaml", (), ()),
    (TrainSettings(model_name="gru4rec"), "train/default.yaml", (), ()),
    (SupernodeSettings(), "partner.yaml", ("supernode",), ()),
    (ServingSettings(), "partner.yaml", ("serving",), ()),
    (CalibrationSettings(), "partner.yaml", ("calibration",), ()),
]


@pytest.mark.parametrize(
    ("settings", "path", "section", "by_design"),
    CASES,
    ids=[f"{type(c[0]).__name__}-{c[1]}" for c in CASES],
)
def test_yaml_restates_the_code_defaults(
    settings: Any, path: str, section: tuple[str, ...], by_design: tuple[str, ...]
) -> None:
    # Prepare
    code = code_defaults(settings)
    shipped = yaml_at(path, *section)

    # Execute: every key both sides have, bar those that differ on purpose
    shared = (set(code) & set(shipped)) - set(by_design)
    disagree = {key: (code[key], shipped[key]) for key in shared if code[key] != shipped[key]}

    # Assert
    assert shared, f"{path} shares no key with {type(settings).__name__}"
    assert not disagree, f"code default vs {path} (code, yaml): {disagree}"
