"""The run folder's calibration and review-gate files, so a merchant can check the promise.

``review.json`` (temperatures, ECE before / after, the ``items`` decision's list length
``items_k``, each decision's cutoff, coverage and handled accuracy on test),
``risk_coverage-<decision>.csv`` (the whole curve on test), ``risk_coverage.png`` and
``reliability.png`` (stated confidence vs observed frequency of the calibrated decisions on test).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedpath.data.containers import Cases
from fedpath.evaluate import calibrated_review, predict_heads
from fedpath.metrics.calibration import reliability_bins
from fedpath.models.base import DEFAULT_REVIEW_THRESHOLD, NextStepModel
from fedpath.models.calibration import DEFAULT_ITEMS_K
from fedpath.plots import plt
from fedpath.review import DECISIONS, ReviewGate
from fedpath.runfolder import write_json, write_rows_csv


def write_review(
    run_dir: Path,
    model: NextStepModel,
    valid: Cases,
    test: Cases,
    *,
    threshold: float = DEFAULT_REVIEW_THRESHOLD,
    items_k: int = DEFAULT_ITEMS_K,
) -> dict[str, float]:
    """Calibrate on valid, gate each decision (the ``items`` one on top-``items_k`` lists),
    write the files; returns the review metrics."""
    valid_outputs = predict_heads(model, valid, items_k=items_k)
    test_outputs = predict_heads(model, test, items_k=items_k)
    metrics, curves, temperatures = calibrated_review(
        valid_outputs, valid, test_outputs, test, threshold=threshold
    )
    write_json(run_dir / "review.json", {"threshold": threshold, "items_k": items_k, **metrics})
    for decision, curve in curves.items():
        rows = [
            dict(zip(curve, values, strict=True)) for values in zip(*curve.values(), strict=True)
        ]
        write_rows_csv(run_dir / f"risk_coverage-{decision}.csv", rows)
    calibrated = temperatures.apply(test_outputs)
    _plot_risk_coverage(run_dir / "risk_coverage.png", curves, metrics, threshold)
    _plot_reliability(
        run_dir / "reliability.png",
        {
            decision: ReviewGate(decision=decision).outcomes(calibrated, test)
            for decision in DECISIONS
        },
    )
    return metrics


def _plot_risk_coverage(
    path: Path,
    curves: dict[str, dict[str, np.ndarray]],
    metrics: dict[str, float],
    threshold: float,
) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for decision, curve in curves.items():
        ax.plot(curve["coverage"], curve["accuracy"], label=decision)
        coverage = metrics[f"{decision}_gate_coverage"]
        if coverage > 0:
            ax.plot(coverage, metrics[f"{decision}_gate_handled_accuracy"], "o", color="black")
    ax.axhline(threshold, linestyle="--", color="grey", label=f"promise {threshold}")
    ax.set_xlabel("coverage (share handled automatically)")
    ax.set_ylabel("accuracy of the handled share")
    _save(fig, ax, "risk–coverage on test (dots: the gate)", path)


def _plot_reliability(path: Path, outcomes: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="calibrated")
    for decision, (confidence, correct) in outcomes.items():
        bins = reliability_bins(confidence, correct)
        seen = bins["count"] > 0
        ax.plot(bins["confidence"][seen], bins["frequency"][seen], marker="o", label=decision)
    ax.set_xlabel("stated confidence (calibrated)")
    ax.set_ylabel("observed accuracy")
    _save(fig, ax, "reliability on test", path)


def _save(fig: plt.Figure, ax: plt.Axes, title: str, path: Path) -> None:
    """Title, legend and grid as both review plots show them; the figure written and closed."""
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
