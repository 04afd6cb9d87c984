"""Daily calibration at the partner: a tuned copy of the promoted model is served while the
promoted model is its base, its gain on the partner's newest held-out events is reported, and a
newly published model takes over at once."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from federation_paths import N_ITEMS, TINY_GRU, paths  # tests/ is on sys.path

from fedpath.clients.calibration import (
    REPORT,
    CalibrationSettings,
    calibrate,
    calibration_loop,
)
from fedpath.clients.serving import ModelSource, ServingSettings
from fedpath.data.cases import expand_prefixes
from fedpath.federation.registry import ModelRegistry
from fedpath.models.markov import MarkovChain
from fedpath.models.registry import build_model


@pytest.fixture(scope="module")
def skewed() -> tuple:
    """A global model of step-1 paths, and a partner whose own paths take steps of 2."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_model("gru4rec", n_items=N_ITEMS, epochs=4, **TINY_GRU)
        with torch.random.fork_rng(devices=[]):
            model.fit(expand_prefixes(paths(240, 1) + paths(40, 2, step=2)))
        own = {
            "train": expand_prefixes(paths(40, 3, step=2)),
            "valid": expand_prefixes(paths(15, 4, step=2)),
            "test": expand_prefixes(paths(20, 5, step=2)),
        }
        yield model, own
    finally:
        torch.set_num_threads(threads)


def promote(registry: ModelRegistry, model, round: int) -> int:
    card = registry.register(model, campaign="c1", round=round, config_hash="h", parent=None)
    registry.promote(card.version, {"promoted": True})
    return card.version


def test_a_calibrated_copy_is_served_until_a_new_model_is_published(
    tmp_path: Path, skewed: tuple
) -> None:
    # Prepare
    model, own = skewed
    registry, personal = ModelRegistry(tmp_path / "models"), ModelRegistry(tmp_path / "personal")
    promote(registry, model, round=1)
    source = ModelSource(registry, None, ServingSettings(reload_every=0.0, max_batch=1), personal)
    stop = threading.Event()

    def run() -> dict:
        stop.set()  # one turn of the loop
        return calibrate(registry, personal, own, epochs=5, ks=(10, 20))

    # Execute
    before = source.current()
    calibration_loop(stop, tmp_path, run, CalibrationSettings(enabled=True))
    calibrated = source.current()
    newer = promote(registry, model, round=2)
    published = source.current()

    # Assert
    report = json.loads((tmp_path / REPORT).read_text())
    assert report["adopted"] and report["base_version"] == 1
    assert report["gain"]["recall@20"] == pytest.approx(
        report["personalized"]["recall@20"] - report["shared"]["recall@20"]
    )
    assert report["gain"]["recall@20"] > 0  # the partner's own steps, learned by its heads
    assert personal.get(report["personal_version"]).parent == 1
    assert (before.version, before.personal) == (1, None)
    assert (calibrated.version, calibrated.personal) == (1, report["personal_version"])
    assert calibrated.model.get_weights()["action_head.weight"].tolist() != (
        model.get_weights()["action_head.weight"].tolist()
    )
    assert (published.version, published.personal) == (newer, None)


def test_a_count_model_is_not_calibrated(tmp_path: Path, skewed: tuple) -> None:
    # Prepare
    _, own = skewed
    registry, personal = ModelRegistry(tmp_path / "models"), ModelRegistry(tmp_path / "personal")
    promote(registry, MarkovChain(n_items=N_ITEMS).fit(own["train"]), round=1)

    # Execute
    report = calibrate(registry, personal, own, epochs=1, ks=(20,))

    # Assert
    assert report["skipped"] == "markov has no output layers to tune"
    assert personal.promoted() is None


def test_calibration_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="every_hours must be > 0"):
        CalibrationSettings(every_hours=0)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        CalibrationSettings(epochs=0)
