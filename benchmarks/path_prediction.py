"""Path prediction against the baselines a data scientist tries first (issue 13), same cases.

On each log (default Taobao-772, `data=taobao`) under the default benchmark protocol, every
system is fitted on train and scored on the same test cases:

- baselines (`fedpath.baselines`): majority class, last-action Markov, logistic regression and
  HistGradientBoosting on session features (both class-balanced for the action question);
- fedpath's heads: each model named by ``--models``, trained as `fedpath train` trains it
  (the composed `conf/`), for each seed.

Questions and metrics: next action (macro-F1 of the argmax), who leaves next (exit PR-AUC),
will the session convert (ROC-AUC / PR-AUC of ``Cases.converts``, as `fedpath train` reports
it) and will a purchase still follow this prefix (``purchase_ahead``, the merchant's question).
Each baseline is fitted once per conversion target. Intervals are 95% percentile bootstraps over
test sessions; "Δ vs best baseline" is paired (same replicates) against the baseline with the
best point value on that metric. Quality figures, not timing: fine on a loaded machine.

    .venv/bin/python benchmarks/path_prediction.py                        # taobao, gru4rec seed 0
    .venv/bin/python benchmarks/path_prediction.py --quick                # 2 epochs, 100 replicates
    .venv/bin/python benchmarks/path_prediction.py --logs taobao rees46 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import RESULTS, data_source, plain, train_config

from fedpath.baselines.heads import (
    FeatureBaseline,
    LastActionMarkov,
    MajorityBaseline,
    PathBaseline,
)
from fedpath.data.containers import Cases
from fedpath.data.protocol import ProtocolConfig
from fedpath.evaluate import calibrated_review
from fedpath.metrics.bootstrap import bootstrap_scores, interval, session_replicates
from fedpath.metrics.classification import action_macro_f1, conversion_auc, exit_pr_auc, pr_auc
from fedpath.models.base import Predictions
from fedpath.models.registry import build_model
from fedpath.runfolder import write_json
from fedpath.simulations.pipeline import PreparedData, prepare
from fedpath.targets import conversion_label

QUICK_EPOCHS = 2
REVIEW_COLUMNS = (
    "action_ece_raw",
    "action_ece",
    "conversion_ece_raw",
    "conversion_ece",
    *(
        f"{d}_gate_{k}"
        for d in ("action", "exit", "convert")
        for k in ("cutoff", "coverage", "handled_accuracy")
    ),
)
QUICK_REPLICATES = 100
# conversion metric -> (target whose predictions it scores, curve); the action metrics read the
# action head of the "session" predictions
CONVERSION_METRICS: dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], float]]] = {
    "conversion_auc": ("session", conversion_auc),
    "conversion_pr_auc": ("session", pr_auc),
    "ahead_auc": ("ahead", conversion_auc),
    "ahead_pr_auc": ("ahead", pr_auc),
}
METRICS = ("action_macro_f1", "exit_pr_auc", *CONVERSION_METRICS)


def baselines(target: str, seed: int) -> list[PathBaseline]:
    """The four baselines, answering conversion question ``target``."""
    return [
        MajorityBaseline(conversion_target=target),
        LastActionMarkov(conversion_target=target),
        FeatureBaseline(estimator="logistic", conversion_target=target, seed=seed),
        FeatureBaseline(estimator="hgb", conversion_target=target, seed=seed),
    ]


def metric_functions(
    cases: Cases, outputs: dict[str, Predictions]
) -> dict[str, Callable[[np.ndarray], float]]:
    """metric -> f(rows), scoring the predictions for that metric's target on ``rows``."""
    labels = {target: conversion_label(cases, target) for target in ("session", "ahead")}
    action = outputs["session"]

    def score(name: str) -> Callable[[np.ndarray], float]:
        if name == "action_macro_f1":
            return lambda rows: action_macro_f1(action.action_probs[rows], cases.next_action[rows])
        if name == "exit_pr_auc":
            return lambda rows: exit_pr_auc(action.action_probs[rows], cases.next_action[rows])
        target, curve = CONVERSION_METRICS[name]
        probs, truth = outputs[target].convert_prob, labels[target]
        return lambda rows: curve(probs[rows], truth[rows])

    return {name: score(name) for name in METRICS}


def fedpath_outputs(
    model_name: str, cfg: Any, data: PreparedData, seed: int, epochs: int | None
) -> tuple[dict[str, Predictions], Predictions]:
    """A fedpath model trained as `fedpath train` would: (test outputs, valid outputs).

    Its one conversion head answers both conversion questions; ``model.convert_target=ahead``
    in the model's Hydra overrides (``--overrides``) trains it on the merchant's one.
    """
    import torch

    params = plain(cfg.model)
    params.pop("name")
    if epochs is not None and "epochs" in params:
        params["epochs"] = epochs
    torch.set_num_threads(int(cfg.train.threads))
    model = build_model(model_name, n_items=data.split.n_items, seed=seed, **params)
    model.fit(data.train, data.valid)
    predictions = model.predict(data.test)
    return {"session": predictions, "ahead": predictions}, model.predict(data.valid)


def run_log(log: str, models: Sequence[str], seeds: Sequence[int], args: Any) -> dict[str, Any]:
    """Every system on ``log``'s test cases, with bootstrap intervals and paired differences."""
    cfg = train_config([f"data={log}"])
    with tempfile.TemporaryDirectory() as run_dir:
        data = prepare(data_source(cfg.data), ProtocolConfig(**plain(cfg.protocol)), Path(run_dir))
    test = data.test
    replicates = session_replicates(test.session_index, n_replicates=args.replicates, seed=0)
    everything = np.arange(len(test))
    systems: dict[str, dict[str, Any]] = {}

    def record(
        name: str, kind: str, outputs: dict[str, Predictions], valid_outputs: Predictions
    ) -> None:
        functions = metric_functions(test, outputs)
        review, _, _ = calibrated_review(
            valid_outputs, data.valid, outputs["session"], test, threshold=args.threshold
        )
        systems[name] = {
            "kind": kind,
            "point": {m: f(everything) for m, f in functions.items()},
            "replicates": bootstrap_scores(functions, replicates),
            "review": review,
        }
        print(f"{log} {name}: {systems[name]['point']} {review}", file=sys.stderr, flush=True)

    for index, baseline in enumerate(baselines("session", seed=0)):
        ahead = baselines("ahead", seed=0)[index].fit(data.train)
        baseline.fit(data.train)
        outputs = {"session": baseline.predict(test), "ahead": ahead.predict(test)}
        record(baseline.name, "baseline", outputs, baseline.predict(data.valid))
    for model in models:
        model_cfg = train_config([f"data={log}", f"model={model}", *args.overrides])
        for seed in seeds:
            outputs, valid_outputs = fedpath_outputs(model, model_cfg, data, seed, args.epochs)
            record(f"fedpath {model} (seed {seed})", "fedpath", outputs, valid_outputs)
    return {"log": log, "n_test_cases": len(test), **summarize(systems)}


def summarize(systems: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Point, interval, and for fedpath systems the paired difference to the best baseline."""
    rows, best = [], {}
    for metric in METRICS:
        candidates = {n: s for n, s in systems.items() if s["kind"] == "baseline"}
        best[metric] = max(candidates, key=lambda n: np.nan_to_num(candidates[n]["point"][metric]))
    for name, system in systems.items():
        row: dict[str, Any] = {"system": name, "kind": system["kind"], **system["review"]}
        for metric in METRICS:
            values = system["replicates"][metric]
            entry = {"value": system["point"][metric], "ci95": interval(values)}
            if system["kind"] == "fedpath":
                reference = systems[best[metric]]
                entry["best_baseline"] = best[metric]
                entry["delta"] = system["point"][metric] - reference["point"][metric]
                entry["delta_ci95"] = interval(values - reference["replicates"][metric])
            row[metric] = entry
        rows.append(row)
    return {"best_baseline": best, "rows": rows}


def markdown(results: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    """The table of every log, with the differences of fedpath's heads to the best baseline."""
    lines = [
        "# Path prediction: baselines vs fedpath's heads (issue 13)",
        "",
        f"Settings: {settings}. 95% bootstrap intervals over test sessions in brackets; "
        "Δ is paired against the best baseline on that metric.",
    ]
    for result in results:
        lines += [
            "",
            f"## {result['log']} ({result['n_test_cases']} test cases)",
            "",
            "| system | " + " | ".join(METRICS) + " |",
            "|---" * (len(METRICS) + 1) + "|",
        ]
        for row in result["rows"]:
            cells = []
            for metric in METRICS:
                entry = row[metric]
                low, high = entry["ci95"]
                cell = f"{entry['value']:.3f} [{low:.3f}, {high:.3f}]"
                if "delta" in entry:
                    d_low, d_high = entry["delta_ci95"]
                    cell += f"<br>Δ {entry['delta']:+.3f} [{d_low:+.3f}, {d_high:+.3f}]"
                cells.append(cell)
            lines.append(f"| {row['system']} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Calibration (temperature per head, fitted on valid) and the review gate at "
            f"{settings['threshold']} (cutoff certified on valid, coverage and accuracy of the "
            "handled share on test; conversion = the session converts):",
            "",
            "| system | " + " | ".join(REVIEW_COLUMNS) + " |",
            "|---" * (len(REVIEW_COLUMNS) + 1) + "|",
        ]
        for row in result["rows"]:
            cells = [f"{row[c]:.3f}" for c in REVIEW_COLUMNS]
            lines.append(f"| {row['system']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", nargs="+", default=["taobao"])
    parser.add_argument("--models", nargs="+", default=["gru4rec"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=None, help="override the models' epochs")
    parser.add_argument("--threshold", type=float, default=0.85, help="the review gate's promise")
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="Hydra overrides of fedpath's models"
    )
    parser.add_argument("--quick", action="store_true", help="2 epochs, 100 replicates")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.replicates = QUICK_EPOCHS, QUICK_REPLICATES
    results = [run_log(log, args.models, args.seeds, args) for log in args.logs]
    settings = {
        "logs": args.logs,
        "models": args.models,
        "seeds": args.seeds,
        "replicates": args.replicates,
        "epochs": args.epochs or "conf/model",
        "overrides": args.overrides,
        "threshold": args.threshold,
    }
    stem = "path_prediction-quick" if args.quick else "path_prediction"
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{stem}.json", {"settings": settings, "results": results})
    (args.out / f"{stem}.md").write_text(markdown(results, settings))
    print(markdown(results, settings))


if __name__ == "__main__":
    main()
