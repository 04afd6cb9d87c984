"""Saving a model to safetensors and rebuilding it from the file alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file
from test_neural_models import N_ITEMS, NEURAL, cases_of  # pytest puts tests/ on sys.path

import fedpath
from fedpath.errors import DataFormatError
from fedpath.models.registry import build_model
from fedpath.models.weights_io import load_model, model_params, save_weights
from fedpath.privacy.dp.config import SessionDP
from fedpath.privacy.dp.session import SessionDPSGD

TINY = {"embedding_size": 8, "dropout": 0.1, "epochs": 1}


@pytest.mark.parametrize("name", NEURAL)
def test_save_load_round_trip_rebuilds_the_same_model(name: str, tmp_path) -> None:
    # Prepare
    cases = cases_of([[0, 1, 2, 3], [4, 5, 6]])
    model = build_model(name, n_items=N_ITEMS, seed=5, **TINY).fit(cases)
    # Execute
    loaded = load_model(save_weights(tmp_path / "model.safetensors", model))
    # Assert
    assert type(loaded) is type(model)
    assert model_params(loaded) == model_params(model)
    np.testing.assert_array_equal(
        loaded.predict(cases).item_scores, model.predict(cases).item_scores
    )


def test_file_header_describes_the_model(tmp_path) -> None:
    # Prepare
    model = build_model("gru4rec", n_items=N_ITEMS, seed=2, hidden_size=12, **TINY)
    # Execute
    path = save_weights(tmp_path / "gru.safetensors", model)
    with safe_open(path, framework="np") as handle:
        metadata = json.loads(handle.metadata()["fedpath"])
    # Assert
    assert metadata["model"] == "gru4rec"
    assert (metadata["n_items"], metadata["seed"]) == (N_ITEMS, 2)
    assert metadata["params"]["hidden_size"] == 12
    assert metadata["params"]["embedding_size"] == 8
    assert metadata["fedpath_version"] == fedpath.__version__
    assert not list(tmp_path.glob(".*partial"))


def test_model_params_lists_base_and_subclass_arguments() -> None:
    # Execute
    params = model_params(build_model("sasrec", n_items=N_ITEMS, num_heads=1, **TINY))
    # Assert
    assert params["num_heads"] == 1
    assert params["n_items"] == N_ITEMS
    assert params["proximal_mu"] == 0.0
    assert "shared" not in params


def test_a_file_without_fedpath_metadata_is_refused(tmp_path) -> None:
    # Prepare
    path = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, path)
    # Execute / Assert
    with pytest.raises(DataFormatError, match=r"foreign\.safetensors: header must hold fedpath"):
        load_model(path)


def test_a_file_that_is_not_safetensors_is_refused(tmp_path) -> None:
    # Prepare
    path = tmp_path / "notes.safetensors"
    path.write_text("not a model")
    # Execute / Assert
    with pytest.raises(
        DataFormatError, match=r"notes\.safetensors: must be a readable safetensors"
    ):
        load_model(path)


def test_weights_that_do_not_fit_the_described_model_are_refused(tmp_path) -> None:
    # Prepare: a header that says 12 items over arrays saved for 20
    model = build_model("narm", n_items=20, **TINY)
    path = save_weights(tmp_path / "narm.safetensors", model)
    with safe_open(path, framework="np") as handle:
        metadata = json.loads(handle.metadata()["fedpath"])
        arrays = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    save_file(arrays, path, metadata={"fedpath": json.dumps({**metadata, "n_items": N_ITEMS})})
    # Execute / Assert
    with pytest.raises(ValueError, match=r"item_embedding\.weight.*must have shape \(13, 8\)"):
        load_model(path)


def test_runtime_machinery_is_not_saved(tmp_path) -> None:
    # Prepare: a model carrying a DP-SGD trainer, live state rather than a setting
    private = SessionDPSGD(SessionDP())
    model = build_model("gru4rec", n_items=N_ITEMS, private=private, **TINY)
    # Execute
    loaded = load_model(save_weights(tmp_path / "private.safetensors", model))
    # Assert
    assert "private" not in model_params(model)
    assert loaded.private is None
