"""benchmarks/path_prediction.py: the best-baseline choice and the paired difference, by hand."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from conftest import REPO


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The script as a module (it imports its sibling `common` by name)."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import path_prediction

    return path_prediction


def system(kind: str, value: float, replicates: list[float], metrics) -> dict:
    return {
        "kind": kind,
        "point": dict.fromkeys(metrics, value),
        "replicates": {m: np.array(replicates) for m in metrics},
        "review": {},
    }


def test_fedpath_is_compared_with_the_best_baseline_on_paired_replicates(
    bench: ModuleType,
) -> None:
    # Prepare: baseline b beats a; fedpath is b + 0.05 on every replicate
    metrics = bench.METRICS
    systems = {
        "a": system("baseline", 0.2, [0.1, 0.2, 0.3], metrics),
        "b": system("baseline", 0.4, [0.3, 0.4, 0.5], metrics),
        "fedpath": system("fedpath", 0.45, [0.35, 0.45, 0.55], metrics),
    }

    # Execute
    summary = bench.summarize(systems)

    # Assert
    row = summary["rows"][2]["action_macro_f1"]
    assert summary["best_baseline"]["exit_pr_auc"] == "b"
    assert row["delta"] == pytest.approx(0.05)
    assert row["delta_ci95"] == pytest.approx((0.05, 0.05))
    assert "delta" not in summary["rows"][0]["action_macro_f1"]
