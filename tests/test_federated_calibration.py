"""The federated model's calibration, fitted from secure sums, equals the central fit on the
union of the partners' valid cases; the funnel's forecast is the union's (real Taobao events,
one real Flower simulation under SecAgg+, shared by every assertion below)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from federation_paths import TINY_GRU

from fedpath.data.cases import expand_prefixes
from fedpath.data.protocol import ProtocolConfig
from fedpath.evaluate import calibrated_review, predict_heads
from fedpath.federation.config import FederationConfig, FunnelSettings, SecAggSettings
from fedpath.metrics.funnel import conversion_sums
from fedpath.models.calibration import DECISIONS
from fedpath.privacy.crypto import load_model_file, save_run_model
from fedpath.simulations.federation import run_federation
from fedpath.simulations.partition import PartitionConfig, partition
from fedpath.simulations.pipeline import DataSource, prepare

TAOBAO_LINES = 20_000  # the first ~100 users of Taobao-772: a few hundred sessions
THRESHOLD = 0.6  # low enough that a small valid set certifies some cutoffs
CONFIG = FederationConfig(
    model="gru4rec",
    model_params=TINY_GRU,
    rounds=1,
    secagg=SecAggSettings(timeout=120),
    funnel=FunnelSettings(enabled=True),
    review_threshold=THRESHOLD,
)


@pytest.fixture(scope="module")
def run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("taobao")
    lines = (shared_data / "taobao-userbehavior" / "UserBehavior.csv").read_text().splitlines()
    (folder / "UserBehavior.csv").write_text("\n".join(lines[:TAOBAO_LINES]) + "\n")
    source = DataSource("taobao", folder / "UserBehavior.csv", format="taobao")
    data = prepare(source, ProtocolConfig(), folder)
    partners = partition(data.split, PartitionConfig(scheme="natural", n_partners=2, by="category"))
    return data, partners, run_federation(data.split, partners, CONFIG)


def test_federated_temperatures_and_cutoffs_equal_the_central_fit_on_the_union(run):
    # Prepare: the union of the partners' valid splits is the log's valid split
    data, partners, result = run
    assert sum(len(p.data.valid) for p in partners) == len(data.split.valid)
    valid = expand_prefixes(data.split.valid, max_len=CONFIG.max_len)
    outputs = predict_heads(result.model, valid)

    # Execute: the central fit, as `fedpath train` does it
    central, _, temperatures = calibrated_review(
        outputs, valid, outputs, valid, threshold=THRESHOLD
    )

    # Assert: every partner in both sums, and the very same calibration
    assert result.calibration is not None
    assert result.calibration.temperature_partners == [0, 1]
    assert result.calibration.cutoff_partners == [0, 1]
    calibration = result.model.calibration
    assert calibration is result.calibration.calibration
    assert calibration.temperatures == temperatures
    assert calibration.cutoffs == {d: central[f"{d}_gate_cutoff"] for d in DECISIONS}
    assert any(np.isfinite(c) for c in calibration.cutoffs.values())
    assert calibration.threshold == THRESHOLD


def test_funnel_forecast_is_the_unions_calibrated_prediction_on_arrival(run):
    # Prepare: the union's test sessions, scored by the calibrated model
    data, _, result = run
    test = expand_prefixes(data.split.test, max_len=CONFIG.max_len)
    calibrated = result.model.calibration.temperatures.apply(predict_heads(result.model, test))
    sessions, actual, predicted = conversion_sums(calibrated.convert_prob, test)

    # Assert: counts exact, the predicted sum within the fixed point's bound (2 partners)
    funnel = result.funnel
    assert funnel is not None and funnel.calibrated
    assert (funnel.conversion.sessions, funnel.conversion.actual) == (sessions, actual)
    assert funnel.conversion.actual == sum(s.converts for s in data.split.test)
    assert funnel.conversion.predicted == pytest.approx(predicted, abs=2 * 2**-21 + 1e-5)


def test_the_federated_model_file_carries_its_calibration(run, tmp_path: Path):
    # Prepare
    _, _, result = run

    # Execute: saved as `fedpath simulate` saves the run's model (no key: in the clear)
    path = save_run_model(tmp_path, result.model, None)

    # Assert
    assert load_model_file(path).calibration == result.model.calibration
