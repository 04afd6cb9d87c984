"""A trained model carries its temperatures and review cutoffs in its file (issue 13 item 5)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import run_cli
from test_neural_models import N_ITEMS, cases_of  # pytest puts tests/ on sys.path

from fedpath.errors import DataFormatError
from fedpath.models.calibration import Calibration
from fedpath.models.markov import MarkovChain
from fedpath.models.temperature import Temperatures
from fedpath.models.weights_io import load_model, save_weights


def _markov() -> MarkovChain:
    return MarkovChain(n_items=N_ITEMS).fit(cases_of([[0, 1, 2, 3], [4, 5, 6]]))


def test_fedpath_train_saves_the_review_calibration_with_the_model(tmp_path: Path) -> None:
    # Execute: a real (small, synthetic) training run through the console command
    run_cli("train", "model=markov", "data.n_sessions=400", f"out={tmp_path}")

    # Assert: the model file states the temperatures and cutoffs review.json reports
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    review = json.loads((run_dir / "review.json").read_text())
    calibration = load_model(run_dir / "model.safetensors").calibration
    assert calibration is not None
    assert calibration.temperatures == Temperatures(
        action=review["action_temperature"], convert=review["convert_temperature"]
    )
    assert calibration.threshold == review["threshold"]
    for decision in ("action", "exit", "convert"):
        stated = review[f"{decision}_gate_cutoff"]
        cutoff = calibration.cutoffs[decision]
        assert cutoff == stated or (math.isinf(cutoff) and stated in (None, math.inf)), decision


def test_an_uncertified_cutoff_survives_the_file_as_infinite(tmp_path: Path) -> None:
    # Prepare
    model = _markov()
    model.calibration = Calibration(
        temperatures=Temperatures(action=1.5, convert=0.5),
        cutoffs={"action": math.inf, "exit": 0.9},
        threshold=0.85,
    )

    # Execute
    loaded = load_model(save_weights(tmp_path / "m.safetensors", model))

    # Assert
    assert loaded.calibration == model.calibration


def test_a_model_file_without_calibration_loads_uncalibrated(tmp_path: Path) -> None:
    # Execute: a file as written before models carried a calibration (no "calibration" key)
    loaded = load_model(save_weights(tmp_path / "m.safetensors", _markov()))

    # Assert
    assert loaded.calibration is None


def test_a_calibration_naming_an_unknown_decision_is_refused(tmp_path: Path) -> None:
    # Prepare
    with pytest.raises(ValueError, match="cutoff decisions must be among"):
        Calibration(cutoffs={"buy": 0.9})
    model = _markov()
    model.calibration = Calibration(cutoffs={"exit": 0.9})
    path = save_weights(tmp_path / "m.safetensors", model)
    data = path.read_bytes().replace(b'\\"exit\\"', b'\\"buy!\\"')
    path.write_bytes(data)

    # Execute / Assert
    with pytest.raises(DataFormatError, match="field 'calibration' must hold"):
        load_model(path)
