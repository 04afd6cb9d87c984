"""The federated model's calibration, fitted from secure sums, equals the central fit on the
union of the partners' valid cases; the funnel's forecast is the union's, and the simulation's
run folder holds the calibrated model and each partner's own rows (real Taobao events, one real
Flower simulation under SecAgg+, shared by every assertion below)."""

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
from fedpath.privacy.crypto import load_model_file
from fedpath.simulations.experiment import ExperimentSettings, run_experiment
from fedpath.simulations.lineage import begin_simulation_audit
from fedpath.simulations.partition import PartitionConfig, partition
from fedpath.simulations.pipeline import DataSource, prepare
from fedpath.simulations.report import write_simulation_run
from fedpath.simulations.training import TrainSettings

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
    settings = ExperimentSettings(
        federation=CONFIG,
        partition=PartitionConfig(scheme="natural", n_partners=2, by="category"),
        train=TrainSettings(model_name="gru4rec", model_params=TINY_GRU),
        baselines=False,
    )
    experiment = run_experiment(data, settings)
    run_dir = folder / "run"
    run_dir.mkdir()
    audit = begin_simulation_audit(data, settings, run_dir)
    write_simulation_run(data, settings, experiment, run_dir, audit=audit)
    partners = partition(data.split, settings.partition)  # the same partners: deterministic
    return data, partners, experiment.federation, experiment, run_dir


def test_federated_temperatures_and_cutoffs_equal_the_central_fit_on_the_union(run):
    # Prepare: the union of the partners' valid splits is the log's valid split
    data, partners, result, _, _ = run
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
    data, _, result, _, _ = run
    test = expand_prefixes(data.split.test, max_len=CONFIG.max_len)
    calibrated = result.model.calibration.temperatures.apply(predict_heads(result.model, test))
    sessions, actual, predicted = conversion_sums(calibrated.convert_prob, test)

    # Assert: counts exact, the predicted sum within the fixed point's bound (2 partners)
    funnel = result.funnel
    assert funnel is not None and funnel.calibrated
    assert (funnel.conversion.sessions, funnel.conversion.actual) == (sessions, actual)
    assert funnel.conversion.actual == sum(s.converts for s in data.split.test)
    assert funnel.conversion.predicted == pytest.approx(predicted, abs=2 * 2**-21 + 1e-5)


def test_the_simulation_run_folder_holds_the_calibrated_model_and_each_partners_rows(run):
    # Prepare
    _, _, result, experiment, run_dir = run
    report = (run_dir / "report.md").read_text()

    # Assert: the saved model loads with its calibration
    assert load_model_file(run_dir / "model.safetensors").calibration == result.model.calibration
    # ... each partner's own forecast adds up to the union's secure sum
    own = [p.conversion for p in experiment.partners]
    assert sum(c.sessions for c in own) == result.funnel.conversion.sessions
    assert sum(c.actual for c in own) == result.funnel.conversion.actual
    assert sum(c.predicted for c in own) == pytest.approx(
        result.funnel.conversion.predicted, abs=1e-5
    )
    assert sum(p.funnel.reached[2] for p in experiment.partners) == result.funnel.funnel.reached[2]
    # ... and the report shows the union's forecast and one row per partner, by its label
    assert "## Calibration of the federated model" in report
    assert "Predicted vs actual conversion of the union's test sessions" in report
    for partner in experiment.partners:
        assert f"| {partner.name} | {partner.funnel.reached[0]} |" in report
