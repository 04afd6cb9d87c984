"""The run folder's review files: what `fedpath train` writes about calibration and the gate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from session_data import session

from fedpath.data.cases import expand_prefixes
from fedpath.models.registry import build_model
from fedpath.review import DECISIONS
from fedpath.review_artifacts import write_review


def shop(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return expand_prefixes(
        [
            session(f"s{i}", list(range(rng.integers(1, 5))), None)
            if i % 4
            else session(f"s{i}", [0, 1, 2], [0, 1, 2])
            for i in range(n)
        ]
    )


def test_write_review_writes_the_promise_and_its_curves(tmp_path: Path) -> None:
    # Prepare
    train, valid, test = shop(200, 0), shop(200, 1), shop(200, 2)
    model = build_model("markov", n_items=5).fit(train)

    # Execute
    metrics = write_review(tmp_path, model, valid, test, threshold=0.85)

    # Assert: every decision has its gate figures and its whole curve on test
    saved = json.loads((tmp_path / "review.json").read_text())
    assert saved["threshold"] == 0.85
    for decision in DECISIONS:
        assert f"{decision}_gate_coverage" in metrics
        with (tmp_path / f"risk_coverage-{decision}.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert list(rows[0]) == ["cutoff", "coverage", "accuracy"]
        assert float(rows[-1]["coverage"]) == 1.0
        handled = metrics[f"{decision}_gate_handled_accuracy"]
        assert metrics[f"{decision}_gate_coverage"] == 0 or handled >= 0.85
    assert (tmp_path / "risk_coverage.png").stat().st_size > 0
    assert (tmp_path / "reliability.png").stat().st_size > 0
