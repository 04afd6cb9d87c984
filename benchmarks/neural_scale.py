"""The neural models on full Diginetica (43k items, 818k train prefixes), on this machine's CPUs.

Issue 12 item 3: what one epoch costs, what memory it takes, and which output layer gives the
best test figures per CPU-hour. Each run is a fresh spawned process (its peak RSS is its own)
that prepares the log as `fedpath train data=diginetica_full model=M` does (the file's split;
valid = the last 10% of train sessions, which early stopping reads), trains for at most
``--epochs`` epochs, and scores the 60,858 test cases with the best-valid weights.

Two modes:

- quality (default): whole epochs, test P@20 / MRR@20 (%), wall and CPU seconds per epoch.
  Quality figures do not depend on the machine's load; the seconds do, so the JSON records the
  load average, and seconds taken beside other work are marked as such.
- ``--timing``: only ``--steps`` training steps per configuration, the configurations
  interleaved and repeated ``--repeats`` times (medians and spread): the figure to quote for
  seconds per epoch, taken on a quiet machine (the load before and after is recorded).

    .venv/bin/python benchmarks/neural_scale.py --models narm --negatives 0 2048 --epochs 3
    .venv/bin/python benchmarks/neural_scale.py --timing --models gru4rec narm sasrec
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from common import RESULTS, data_source, plain, train_config

from fedpath.data.protocol import ProtocolConfig
from fedpath.evaluate import evaluate
from fedpath.models.registry import build_model
from fedpath.report import markdown_table, print_table
from fedpath.runfolder import write_json
from fedpath.simulations.pipeline import prepare

# Settings for 10^5+ train prefixes, where the YAML defaults (batch 32, dropout 0.6) are tuned
# for logs of a few thousand prefixes: RecBole's lr and the NARM paper's dropout.
SCALE = {"batch_size": 512, "optimizer": "adam", "momentum": 0.0, "lr": 0.001, "dropout": 0.25}


def _prepared(max_train: int | None) -> Any:
    cfg = train_config(["data=diginetica_full"])
    with tempfile.TemporaryDirectory() as run_dir:
        data = prepare(data_source(cfg.data), ProtocolConfig(**plain(cfg.protocol)), Path(run_dir))
    if max_train is not None:  # a smoke run: the first train prefixes, a slice of valid / test
        data = type(data)(
            **{
                **data.__dict__,
                "train": data.train.subset(np.arange(min(max_train, len(data.train)))),
                "valid": data.valid.subset(np.arange(min(max_train // 4, len(data.valid)))),
                "test": data.test.subset(np.arange(min(max_train // 4, len(data.test)))),
            }
        )
    return data


def _model(name: str, negatives: int, n_items: int, epochs: int, threads: int) -> Any:
    import torch

    torch.set_num_threads(threads)
    params = {**SCALE, "item_negatives": negatives, "epochs": epochs, "patience": 1}
    return build_model(name, n_items=n_items, seed=0, **params)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def quality_run(
    name: str, negatives: int, epochs: int, threads: int, max_train: int | None
) -> dict[str, Any]:
    """Train up to ``epochs`` epochs (early stop on valid), then score test."""
    data = _prepared(max_train)
    model = _model(name, negatives, data.split.n_items, epochs, threads)
    history: list[dict[str, float]] = []
    marks = [(time.perf_counter(), time.process_time())]

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        history.append({"epoch": epoch, **metrics, "wall_s": wall - marks[-1][0]})
        history[-1]["cpu_s"] = cpu - marks[-1][1]
        marks.append((wall, cpu))
        print(f"{name} neg={negatives} epoch {epoch}: {history[-1]}", file=sys.stderr, flush=True)

    model.fit(data.train, data.valid, on_epoch=on_epoch)
    test = evaluate(model, data.test, ks=(20,))
    return {
        "model": name,
        "item_negatives": negatives,
        "params": {**SCALE, "item_negatives": negatives},
        "n_items": data.split.n_items,
        "train_cases": len(data.train),
        "test_cases": int(test["n_item_cases"]),
        "epochs_run": len(history),
        "history": history,
        "p@20_%": 100 * test["recall@20"],
        "mrr@20_%": 100 * test["mrr@20"],
        "train_wall_s": sum(h["wall_s"] for h in history),
        "train_cpu_s": sum(h["cpu_s"] for h in history),
        "peak_rss_mib": peak_rss_mib(),
    }


def timing_run(
    name: str, negatives: int, steps: int, threads: int, max_train: int | None
) -> dict[str, Any]:
    """Seconds for ``steps`` training steps on random train prefixes, projected to an epoch."""
    data = _prepared(max_train)
    model = _model(name, negatives, data.split.n_items, 1, threads)
    rows = np.random.default_rng(0).choice(len(data.train), steps * SCALE["batch_size"], False)
    started, cpu = time.perf_counter(), time.process_time()
    model.fit(data.train.subset(np.sort(rows)))
    wall = time.perf_counter() - started
    return {
        "model": name,
        "item_negatives": negatives,
        "steps": steps,
        "step_ms": 1000 * wall / steps,
        "cpu_step_ms": 1000 * (time.process_time() - cpu) / steps,
        "epoch_s": wall / steps * len(data.train) / SCALE["batch_size"],
        "peak_rss_mib": peak_rss_mib(),
    }


def in_fresh_processes(target: Any, jobs: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Each job in its own spawned process, one after the other."""
    out = []
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        for job in jobs:
            out.append(pool.submit(target, *job).result())
            print(out[-1] if target is timing_run else out[-1]["p@20_%"], file=sys.stderr)
    return out


def summarize_timing(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for key in dict.fromkeys((r["model"], r["item_negatives"]) for r in runs):
        group = [r for r in runs if (r["model"], r["item_negatives"]) == key]
        epochs = [r["epoch_s"] for r in group]
        rows.append(
            {
                "model": key[0],
                "output layer": "full softmax" if key[1] == 0 else f"sampled ({key[1]})",
                "ms/step": statistics.median(r["step_ms"] for r in group),
                "s/epoch": statistics.median(epochs),
                "min-max s/epoch": f"{min(epochs):.0f}-{max(epochs):.0f}",
                "peak MiB": max(r["peak_rss_mib"] for r in group),
                "repeats": len(group),
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["gru4rec", "narm", "sasrec"])
    parser.add_argument("--negatives", nargs="+", type=int, default=[0, 2048])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timing", action="store_true", help="time --steps steps, interleaved")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-train", type=int, default=None, help="smoke runs: first N prefixes")
    parser.add_argument("--out", default=None, help="result name (default by mode)")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    configs = [(m, n) for m in args.models for n in args.negatives]
    if args.timing:
        jobs = [(m, n, args.steps, args.threads, args.max_train) for m, n in configs]
        runs = in_fresh_processes(timing_run, jobs * args.repeats)  # interleaved repeats
        rows = summarize_timing(runs)
    else:
        jobs = [(m, n, args.epochs, args.threads, args.max_train) for m, n in configs]
        runs = in_fresh_processes(quality_run, jobs)
        rows = [
            {
                "model": r["model"],
                "output layer": "full softmax"
                if r["item_negatives"] == 0
                else f"sampled ({r['item_negatives']})",
                "epochs": r["epochs_run"],
                "P@20 %": r["p@20_%"],
                "MRR@20 %": r["mrr@20_%"],
                "CPU h": r["train_cpu_s"] / 3600,
                "P@20 per CPU h": r["p@20_%"] / max(r["train_cpu_s"] / 3600, 1e-9),
                "peak MiB": r["peak_rss_mib"],
                "test cases": r["test_cases"],
            }
            for r in runs
        ]
    load_after = os.getloadavg()
    name = args.out or ("neural_scale_timing" if args.timing else "neural_scale")
    columns = list(rows[0]) if rows else []
    print_table(rows, columns, title=f"{name} on full Diginetica")
    result = {
        "command": " ".join(sys.argv),
        "mode": "timing" if args.timing else "quality",
        "threads": args.threads,
        "load_before": load_before,
        "load_after": load_after,
        "rows": rows,
        "runs": runs,
    }
    write_json(RESULTS / f"{name}.json", result)
    (RESULTS / f"{name}.md").write_text(
        f"`{result['command']}` (load {load_before[0]:.2f} -> {load_after[0]:.2f})\n\n"
        + markdown_table(rows, columns)
        + "\n"
    )


if __name__ == "__main__":
    main()
