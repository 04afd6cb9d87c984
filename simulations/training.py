"""Centralized training: one model on one log, the ceiling federated runs are compared with."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from fedpath.evaluate import evaluate
from fedpath.models.base import NextStepModel
from fedpath.models.calibration import DEFAULT_ITEMS_K, Calibration
from fedpath.models.registry import build_model
from fedpath.plots import plot_curves
from fedpath.privacy.crypto import save_run_model
from fedpath.report import HEADLINE_METRICS, markdown_table
from fedpath.review_artifacts import write_review
from fedpath.runfolder import write_json, write_rows_csv
from fedpath.simulations.pipeline import PreparedData


@dataclass(frozen=True)
class TrainSettings:
    """Typed values of the `model` and `train` config groups (the core never sees Hydra)."""

    model_name: str
    model_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    threads: int = 2
    review_threshold: float = 0.85
    review_items_k: int = DEFAULT_ITEMS_K  # the list the review gate's ``items`` decision judges
    ks: tuple[int, ...] = (5, 10, 20)


@dataclass(frozen=True)
class TrainResult:
    model: NextStepModel
    history: list[dict[str, float]]
    valid_metrics: dict[str, float]
    test_metrics: dict[str, float]
    seconds: float


def fit_model(
    data: PreparedData, settings: TrainSettings, *, show_progress: bool = True
) -> tuple[NextStepModel, list[dict[str, float]], float]:
    """Build and fit the configured model on the train cases; returns it, its curves and seconds."""
    torch.set_num_threads(settings.threads)
    model = build_model(
        settings.model_name,
        n_items=data.split.n_items,
        seed=settings.seed,
        **settings.model_params,
    )
    history: list[dict[str, float]] = []
    with Progress(
        TextColumn(f"[bold]{settings.model_name}[/bold] epoch {{task.completed}}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        disable=not show_progress,
        transient=True,
    ) as progress:
        task = progress.add_task("fit", total=settings.model_params.get("epochs"), status="")

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            history.append({"epoch": epoch, **metrics})
            shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            progress.update(task, completed=epoch, status=shown)

        start = time.perf_counter()
        model.fit(data.train, data.valid, on_epoch=on_epoch)
        seconds = time.perf_counter() - start
    return model, history, seconds


def train_centralized(
    data: PreparedData,
    settings: TrainSettings,
    run_dir: Path,
    *,
    show_progress: bool = True,
    model_key: bytes | None = None,
) -> TrainResult:
    """Fit, evaluate on valid and test, and write the run folder.

    With ``model_key`` the model is written only encrypted under it (``save_run_model``).
    """
    model, history, seconds = fit_model(data, settings, show_progress=show_progress)
    scores = {
        name: evaluate(model, cases, ks=settings.ks, review_threshold=settings.review_threshold)
        for name, cases in (("valid", data.valid), ("test", data.test))
    }
    # Calibrated on valid, gated per decision, judged on test (review.json and its plots); the
    # temperatures and cutoffs are saved with the model, so its deployment answers the same way.
    review = write_review(
        run_dir,
        model,
        data.valid,
        data.test,
        threshold=settings.review_threshold,
        items_k=settings.review_items_k,
    )
    scores["test"].update(review)
    model.calibration = Calibration.from_review(
        review, settings.review_threshold, settings.review_items_k
    )
    result = TrainResult(model, history, scores["valid"], scores["test"], seconds)
    _write_run_folder(data, settings, result, run_dir, model_key)
    return result


def _write_run_folder(
    data: PreparedData,
    settings: TrainSettings,
    result: TrainResult,
    run_dir: Path,
    model_key: bytes | None,
) -> None:
    write_json(
        run_dir / "metrics.json",
        {
            "model": settings.model_name,
            "data": data.source.name,
            "synthetic": data.synthetic,
            "seed": settings.seed,
            "train_seconds": result.seconds,
            "split": data.split.stats,
            "epochs": result.history,
            "valid": result.valid_metrics,
            "test": result.test_metrics,
            "funnel": data.funnel.to_dict(),
            "quarantined_rows": data.log.n_quarantined,
            "data_warnings": list(data.split.warnings),
        },
    )
    if result.history:
        write_rows_csv(run_dir / "metrics.csv", result.history)
        curve_keys = [k for k in result.history[0] if k != "epoch"]
        plot_curves(
            result.history,
            x_key="epoch",
            y_keys=curve_keys,
            path=run_dir / "learning_curves.png",
            title=f"{settings.model_name} on {data.source.name}",
        )
    save_run_model(run_dir, result.model, model_key)
    (run_dir / "report.md").write_text(_report(data, settings, result))


def _report(data: PreparedData, settings: TrainSettings, result: TrainResult) -> str:
    label = " (SYNTHETIC data: no quality claim)" if data.synthetic else ""
    rows = [{"split": "valid", **result.valid_metrics}, {"split": "test", **result.test_metrics}]
    stats = ", ".join(f"{k}={v}" for k, v in data.split.stats.items())
    return "\n\n".join(
        [
            f"# fedpath train: {settings.model_name} on {data.source.name}{label}",
            *data.account(),
            f"Split: {stats}.",
            f"Seed {settings.seed}; trained in {result.seconds:.1f} s.",
            "## Next-step metrics",
            markdown_table(rows, ["split", *HEADLINE_METRICS]),
            "## Funnel of the data",
            markdown_table(data.funnel.as_rows(), list(data.funnel.as_rows()[0])),
            "![learning curves](learning_curves.png)" if result.history else "",
            "## Calibration and the review gate (review.json)",
            "![risk-coverage](risk_coverage.png) ![reliability](reliability.png)",
        ]
    )
