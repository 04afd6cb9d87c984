"""Every model on both real samples under the benchmark protocol, beside the peer's figures.

Issue 3's "must show" table: each registered model is trained as `fedpath train` would train it
(the same composed `conf/`, the default benchmark protocol) on the Diginetica and REES46
samples; neural models over several seeds (mean ± sample std). The peer (RecBole 1.2.1) figures
are those of ../shared/notes/evaluation-protocol.md, copied below by hand.

Each (log, model, seed) runs in a fresh spawned process, one at a time: its train time is not
slowed by a sibling, and its memory is its own. "peak MB" is that process's peak resident memory
(Python, libraries, torch for neural models, the prepared log, the model, the evaluation);
"fit MB" is how far resident memory rose above its level just before the model was built, at
the peak of building and fitting it (the peak is reset first, so loading cannot hide it).

    .venv/bin/python benchmarks/core_models.py                  # the full benchmark
    .venv/bin/python benchmarks/core_models.py --quick --models markov --logs rees46
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    REPO,
    RESULTS,
    data_source,
    peak_rss_mb,
    plain,
    reset_peak_rss,
    rss_mb,
    train_config,
)

import fedpath.models
from fedpath.data.protocol import ProtocolConfig
from fedpath.evaluate import evaluate
from fedpath.models.registry import MODELS, model_class
from fedpath.report import markdown_table, print_table
from fedpath.runfolder import write_json
from fedpath.simulations.pipeline import DataSource, prepare

LOGS = ("diginetica", "rees46")
COUNT_MODELS = ("popularity", "markov", "cooccurrence")  # deterministic: one run, no seeds
NEURAL_MODELS = tuple(name for name in MODELS if name not in COUNT_MODELS)
SEEDS = (0, 1, 2)
QUICK_EPOCHS = 2
# The note gives its figures to three decimals: a count model reproduces one within rounding.
NOTE_TOLERANCE = 0.0005
METRICS = ("recall@10", "recall@20", "mrr@20", "ndcg@20", "action_accuracy", "conversion_auc")
COSTS = ("train_seconds", "peak_mb", "fit_mb")
PEER_METRICS = ("recall@10", "recall@20", "mrr@20", "ndcg@20")


@dataclass(frozen=True)
class PeerFigure:
    """One row of the note's peer table; ``model`` is the fedpath model it matches, if any."""

    log: str
    label: str
    model: str | None
    neural: bool
    figures: tuple[float, float, float, float]  # R@10, R@20, MRR@20, NDCG@20 (test split)

    def metric(self, name: str) -> float:
        return self.figures[PEER_METRICS.index(name)]


# ../shared/notes/evaluation-protocol.md, "Peer figures on this protocol (test split)".
PEER: tuple[PeerFigure, ...] = (
    PeerFigure("diginetica", "popularity", "popularity", False, (0.023, 0.034, 0.010, 0.015)),
    PeerFigure("diginetica", "first-order Markov", "markov", False, (0.162, 0.173, 0.108, 0.123)),
    PeerFigure(
        "diginetica", "session co-occurrence", "cooccurrence", False, (0.410, 0.504, 0.175, 0.250)
    ),
    PeerFigure(
        "diginetica", "GRU4Rec (batch 256, 3 seeds)", "gru4rec", True, (0.279, 0.367, 0.130, 0.183)
    ),
    PeerFigure("diginetica", "SASRec", "sasrec", True, (0.376, 0.455, 0.144, 0.215)),
    PeerFigure("diginetica", "SASRec (batch 256)", "sasrec", True, (0.372, 0.511, 0.142, 0.224)),
    PeerFigure("diginetica", "NARM (batch 256)", "narm", True, (0.391, 0.489, 0.184, 0.253)),
    PeerFigure("diginetica", "NARM", "narm", True, (0.406, 0.485, 0.187, 0.254)),
    PeerFigure("diginetica", "SR-GNN", None, True, (0.274, 0.338, 0.139, 0.183)),
    PeerFigure("rees46", "popularity", "popularity", False, (0.207, 0.326, 0.100, 0.149)),
    PeerFigure("rees46", "first-order Markov", "markov", False, (0.478, 0.533, 0.315, 0.366)),
    PeerFigure(
        "rees46", "session co-occurrence", "cooccurrence", False, (0.565, 0.641, 0.270, 0.354)
    ),
    PeerFigure("rees46", "GRU4Rec (batch 256)", "gru4rec", True, (0.152, 0.261, 0.083, 0.121)),
    PeerFigure("rees46", "SASRec", "sasrec", True, (0.522, 0.620, 0.216, 0.309)),
    PeerFigure("rees46", "SASRec (batch 256)", "sasrec", True, (0.489, 0.609, 0.221, 0.309)),
    PeerFigure("rees46", "NARM", "narm", True, (0.272, 0.370, 0.127, 0.181)),
    PeerFigure("rees46", "SR-GNN (batch 256)", None, True, (0.402, 0.446, 0.217, 0.269)),
)


def peer_for(log: str, model: str | None = None) -> PeerFigure | None:
    """The peer's best row (by R@20) for ``model``, or among its neural models when None.

    Where the peer ran a model in two settings, the stronger one is the fairer bar.
    """
    rows = [
        p for p in PEER if p.log == log and (p.model == model if model is not None else p.neural)
    ]
    return max(rows, key=lambda p: p.metric("recall@20"), default=None)


# ---------------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class Job:
    """One (log, model, seed) run with everything resolved, so the worker never sees Hydra."""

    log: str
    model: str
    seed: int
    source: DataSource
    protocol: ProtocolConfig
    params: dict[str, Any]
    threads: int
    review_threshold: float
    ks: tuple[int, ...]


def make_jobs(
    logs: Sequence[str],
    models: Sequence[str],
    seeds: Sequence[int],
    *,
    quick: bool,
    threads: int | None = None,
    overrides: Sequence[str] = (),
) -> list[Job]:
    """Compose each (log, model) config as `fedpath train data=<log> model=<model>` would.

    ``threads`` overrides ``train.threads``: on a machine whose cores are busy with other work,
    torch's intra-op threads wait on each other and one thread trains several times faster.
    ``overrides`` are further Hydra overrides, as on `fedpath train`'s command line.
    """
    extra = [*([] if threads is None else [f"train.threads={threads}"]), *overrides]
    jobs = []
    for log in logs:
        for model in models:
            cfg = train_config([f"data={log}", f"model={model}", *extra])
            params = plain(cfg.model)
            params.pop("name")
            if quick and "epochs" in params:
                params["epochs"] = QUICK_EPOCHS
            for seed in seeds if model in NEURAL_MODELS else seeds[:1]:
                jobs.append(
                    Job(
                        log=log,
                        model=model,
                        seed=seed,
                        source=data_source(cfg.data),
                        protocol=ProtocolConfig(**plain(cfg.protocol)),
                        params=params,
                        threads=int(cfg.train.threads),
                        review_threshold=float(cfg.train.review_threshold),
                        ks=tuple(int(k) for k in cfg.train.ks),
                    )
                )
    return jobs


def model_code_digest() -> str:
    """A digest of the model source files this process runs.

    Colleagues may edit the models while a long benchmark runs; each fresh process imports
    whatever is on disk, so every run records what it imported and a mixed table is flagged.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(fedpath.models.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def run_job(job: Job) -> dict[str, Any]:
    """Prepare the log, fit the model on train (early stopping on valid), score valid and test."""
    with tempfile.TemporaryDirectory() as run_dir:
        data = prepare(job.source, job.protocol, Path(run_dir), seed=job.seed)
    cls = model_class(job.model)  # imports torch for a neural model, before memory is measured
    if job.model in NEURAL_MODELS:
        import torch

        torch.set_num_threads(job.threads)
    load_peak = peak_rss_mb()
    before_fit = rss_mb()
    reset_peak_rss()
    epochs: list[int] = []
    start = time.perf_counter()
    model = cls(n_items=data.split.n_items, seed=job.seed, **job.params)
    model.fit(data.train, data.valid, on_epoch=lambda epoch, _: epochs.append(epoch))
    seconds = time.perf_counter() - start
    fit_peak = peak_rss_mb()
    scores = {
        name: evaluate(model, cases, ks=job.ks, review_threshold=job.review_threshold)
        for name, cases in (("valid", data.valid), ("test", data.test))
    }
    return {
        "log": job.log,
        "model": job.model,
        "seed": job.seed,
        "params": job.params,
        "model_code": model_code_digest(),
        "epochs_run": len(epochs),
        "train_seconds": seconds,
        "peak_mb": max(load_peak, peak_rss_mb()),
        "fit_mb": fit_peak - before_fit,
        "split": data.split.stats,
        **scores,
    }


def run_isolated(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Each job in its own freshly spawned process, one after the other."""
    runs = []
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        for job in jobs:
            run = pool.submit(run_job, job).result()
            print(
                f"{job.log} {job.model} seed {job.seed}: R@20 {run['test']['recall@20']:.3f},"
                f" {run['epochs_run']} epochs, {run['train_seconds']:.1f} s,"
                f" peak {run['peak_mb']:.0f} MB",
                file=sys.stderr,
                flush=True,
            )
            runs.append(run)
    return runs


# ------------------------------------------------------------------------------ summary
def _stat(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for one run); NaN stays NaN (e.g. one-class AUC)."""
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "n": len(array)}


def summarize(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (log, model): test metrics and costs over its seeds, and the peer's figures."""
    rows = []
    for key in dict.fromkeys((r["log"], r["model"]) for r in runs):
        group = [r for r in runs if (r["log"], r["model"]) == key]
        row: dict[str, Any] = {"log": key[0], "model": key[1], "seeds": [r["seed"] for r in group]}
        row.update({m: _stat([r["test"][m] for r in group]) for m in METRICS})
        row.update({c: _stat([r[c] for r in group]) for c in COSTS})
        row["n_test_item_cases"] = int(group[0]["test"]["n_item_cases"])
        rows.append(_with_peer(row, peer_for(*key)))
    return rows


def _with_peer(row: dict[str, Any], peer: PeerFigure | None) -> dict[str, Any]:
    row["peer"] = None
    if peer is not None:
        row["peer"] = {"label": peer.label, **{m: peer.metric(m) for m in PEER_METRICS}}
        row["recall@20_ratio"] = row["recall@20"]["mean"] / peer.metric("recall@20")
    return row


def binomial_se(p: float, n: int) -> float:
    """Standard error of a proportion ``p`` measured on ``n`` cases."""
    return math.sqrt(p * (1 - p) / n)


def standing(rows: Sequence[dict[str, Any]], log: str) -> dict[str, Any] | None:
    """Where the best neural model of ``log`` stands against the peer and the co-occurrence bar.

    "Best" is the highest mean test R@20, as the peer's best neural figure was picked.
    """
    neural = [r for r in rows if r["log"] == log and r["model"] in NEURAL_MODELS]
    if not neural:
        return None
    best = max(neural, key=lambda r: r["recall@20"]["mean"])
    ours, n = best["recall@20"]["mean"], best["n_test_item_cases"]
    peer = peer_for(log)
    assert peer is not None  # the note has neural rows for every log in LOGS
    peer_r20 = peer.metric("recall@20")
    se = binomial_se(peer_r20, n)
    result: dict[str, Any] = {
        "best_neural": best["model"],
        "recall@20": best["recall@20"],
        "peer_best_neural": peer.label,
        "peer_recall@20": peer_r20,
        "n_test_item_cases": n,
        "se": se,
        "gap_in_se": (ours - peer_r20) / se,
        "within_two_se": ours >= peer_r20 - 2 * se,
        "cooccurrence": None,
    }
    cooc = next((r for r in rows if r["log"] == log and r["model"] == "cooccurrence"), None)
    if cooc is not None:
        bar = cooc["recall@20"]["mean"]
        bar_se = binomial_se(bar, n)
        result["cooccurrence"] = {
            "recall@20": bar,
            "se": bar_se,
            "difference": ours - bar,
            "gap_in_se": (ours - bar) / bar_se,
        }
    return result


def reproduces_note(row: dict[str, Any]) -> bool | None:
    """Whether a count model's four ranking figures equal the note's to its three decimals."""
    if row["model"] not in COUNT_MODELS or row["peer"] is None:
        return None
    return all(abs(row[m]["mean"] - row["peer"][m]) <= NOTE_TOLERANCE for m in PEER_METRICS)


# ---------------------------------------------------------------------------- rendering
COLUMNS = (
    "log",
    "model",
    "R@10",
    "R@20",
    "MRR@20",
    "NDCG@20",
    "action acc",
    "conv AUC",
    "train s",
    "peak MB",
    "fit MB",
    "peer model",
    "peer R@10",
    "peer R@20",
    "peer MRR@20",
    "peer NDCG@20",
    "R@20 fedpath/peer",
)


def _cell(stat: dict[str, float], digits: int = 3) -> str:
    if math.isnan(stat["mean"]):
        return "n/a"
    text = f"{stat['mean']:.{digits}f}"
    return f"{text} ± {stat['std']:.{digits}f}" if stat["n"] > 1 else text


def _table_row(row: dict[str, Any], label: str, peer: PeerFigure | None) -> dict[str, str]:
    ours = [_cell(row[m]) for m in METRICS]
    costs = [_cell(row["train_seconds"], 2), _cell(row["peak_mb"], 0), _cell(row["fit_mb"], 1)]
    theirs = ["—"] * 6
    if peer is not None:
        ratio = row["recall@20"]["mean"] / peer.metric("recall@20")
        theirs = [peer.label, *(f"{v:.3f}" for v in peer.figures), f"{ratio:.3f}"]
    return dict(zip(COLUMNS, [row["log"], label, *ours, *costs, *theirs], strict=True))


def table_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Each model beside its peer row, then per log the best neural beside the peer's best."""
    out = []
    for log in dict.fromkeys(r["log"] for r in rows):
        for row in (r for r in rows if r["log"] == log):
            out.append(_table_row(row, row["model"], peer_for(log, row["model"])))
        stand = standing(rows, log)
        if stand is not None:
            best = next(r for r in rows if r["log"] == log and r["model"] == stand["best_neural"])
            out.append(_table_row(best, f"best neural: {best['model']}", peer_for(log)))
    return out


def standing_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Plain sentences: note reproduced or not, and the best neural model's standing per log."""
    lines = []
    for row in rows:
        verdict = reproduces_note(row)
        if verdict is not None:
            word = "reproduces" if verdict else "does NOT reproduce"
            lines.append(f"{row['log']} {row['model']}: {word} the note's four figures")
    for log in dict.fromkeys(r["log"] for r in rows):
        stand = standing(rows, log)
        if stand is None:
            continue
        r20 = stand["recall@20"]
        within = "within" if stand["within_two_se"] else "NOT within"
        line = (
            f"{log}: best neural {stand['best_neural']} R@20 {_cell(r20)} ({r20['n']} seeds) vs "
            f"peer's best neural {stand['peer_best_neural']} {stand['peer_recall@20']:.3f}: "
            f"{stand['gap_in_se']:+.2f} SE (SE {stand['se']:.3f} on "
            f"{stand['n_test_item_cases']} cases), {within} two SE"
        )
        bar = stand["cooccurrence"]
        if bar is not None:
            side = "above" if bar["difference"] > 0 else "below"
            line += (
                f"; {side} the co-occurrence bar {bar['recall@20']:.3f} by "
                f"{abs(bar['difference']):.3f} ({bar['gap_in_se']:+.2f} SE)"
            )
        lines.append(line)
    return lines


def mixed_code_warning(meta: dict[str, Any]) -> list[str]:
    """A warning when the runs imported different model code (edited during the benchmark)."""
    if len(meta["model_code"]) <= 1:
        return []
    return [
        f"WARNING: the model code changed during this benchmark (digests {meta['model_code']}):"
        " rerun it before quoting these figures."
    ]


def markdown_report(rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    quick = " — QUICK smoke run, not the benchmark" if meta["quick"] else ""
    return "\n\n".join(
        [
            f"# Core models on the real samples{quick}",
            f"`{meta['command']}` at {meta['revision']} — {meta['date']}, {meta['machine']}, "
            f"torch threads {meta['threads']}; seeds {meta['seeds']} for neural models "
            "(mean ± sample std), count models are deterministic (one run).",
            *mixed_code_warning(meta),
            markdown_table(table_rows(rows), COLUMNS),
            "\n".join(f"- {line}" for line in standing_lines(rows)),
            "Peer: RecBole 1.2.1 figures from ../shared/notes/evaluation-protocol.md (test split); "
            "a model's peer row is the peer's stronger setting of that model, and the best-neural "
            "rows compare the best of each side by test R@20. SE = sqrt(p(1-p)/n) with p the "
            "compared R@20 and n the test item cases. " + MEMORY_NOTE,
        ]
    )


MEMORY_NOTE = (
    "peak MB: peak resident memory (VmHWM) of the fresh process that loaded the log, fitted "
    "and evaluated one model; fit MB: rise of resident memory above its level just before the "
    "model was built, at the peak of building and fitting (peak reset first)."
)


# ---------------------------------------------------------------------------------- main
def revision() -> str:
    """The commit measured, flagged when model code or model config differed from it."""
    git = ["git", "-C", str(REPO)]
    sha = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    changed = subprocess.run(
        [*git, "status", "--porcelain", "--", "fedpath/models", "conf/model"],
        capture_output=True,
        text=True,
    )
    dirty = " + uncommitted changes in fedpath/models or conf/model" if changed.stdout else ""
    return sha.stdout.strip() + dirty


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", nargs="+", choices=LOGS, default=list(LOGS))
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument(
        "--quick", action="store_true", help=f"first seed only, {QUICK_EPOCHS} epochs"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: train.threads)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON and .md")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides for every job, e.g. model.optimizer=adam"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    seeds = args.seeds[:1] if args.quick else args.seeds
    jobs = make_jobs(
        args.logs,
        args.models,
        seeds,
        quick=args.quick,
        threads=args.threads,
        overrides=args.overrides,
    )
    meta: dict[str, Any] = {
        "command": " ".join(["benchmarks/core_models.py", *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "revision": revision(),
        "machine": f"{platform.machine()} {platform.system()}, {len(os.sched_getaffinity(0))} CPUs",
        "threads": jobs[0].threads if jobs else None,
        "seeds": seeds,
        "quick": args.quick,
    }
    runs = run_isolated(jobs)
    rows = summarize(runs)
    meta["model_code"] = sorted({r["model_code"] for r in runs})
    stem = "core_models-quick" if args.quick else "core_models"
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(
        args.out / f"{stem}.json",
        {
            **meta,
            "protocol": asdict(jobs[0].protocol) if jobs else None,
            "rows": rows,
            "standing": {log: standing(rows, log) for log in args.logs},
            "runs": runs,
            "memory": MEMORY_NOTE,
        },
    )
    (args.out / f"{stem}.md").write_text(markdown_report(rows, meta) + "\n")
    print_table(table_rows(rows), COLUMNS, title="fedpath core models vs the peer (test split)")
    print("\n".join([*standing_lines(rows), *mixed_code_warning(meta)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
