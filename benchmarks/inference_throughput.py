"""Next-step inference speed of the neural models on ONE CPU core: batched and single-request.

Each model is built with its `conf/model/<name>.yaml` defaults and scored on real prefixes (every
case of the Diginetica sample under the benchmark protocol, so prefix lengths are a real shop's);
the vocabulary is the sample's, and a larger one to show how full-vocabulary scoring scales
(prefix ids stay valid: they are below the sample's vocabulary size). Weights are untrained:
speed does not depend on their values. A "session" here is one next-step request: a prefix
scored over the whole vocabulary plus the action and conversion heads, returned as numpy.

    .venv/bin/python benchmarks/inference_throughput.py
    .venv/bin/python benchmarks/inference_throughput.py --models gru4rec --vocab 1169 --requests 200
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, data_source, plain, train_config

from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Cases
from fedpath.data.protocol import ProtocolConfig
from fedpath.models.registry import build_model
from fedpath.report import print_table
from fedpath.runfolder import write_json
from fedpath.simulations.pipeline import prepare

MODELS = ("gru4rec", "sasrec", "narm")
LARGE_VOCAB = 20_000
GOAL_SESSIONS_PER_S = 5_000  # the bar for GRU4Rec, batched, one core
COLUMNS = (
    "model",
    "n_items",
    "sessions/s",
    "sessions/cpu-s",
    "p50 ms",
    "p99 ms",
    "p99 cpu-ms",
    "cases",
    "mean prefix",
)


def real_cases() -> tuple[Cases, int]:
    """Every prefix of every Diginetica session (train, valid, test) and the sample's vocabulary."""
    cfg = train_config(["data=diginetica"])
    protocol = ProtocolConfig(**plain(cfg.protocol))
    with tempfile.TemporaryDirectory() as run_dir:
        data = prepare(data_source(cfg.data), protocol, Path(run_dir))
    sessions = [*data.split.train, *data.split.valid, *data.split.test]
    return expand_prefixes(sessions, max_len=protocol.max_prefix_length), data.split.n_items


def batched_rates(model, cases: Cases, repeats: int) -> tuple[float, float]:
    """Cases per wall second and per CPU second, best of ``repeats`` full passes.

    The CPU rate is what one core does when it is not shared; the wall rate is what this
    machine gave while it ran, other processes included (see the load average printed).
    """
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        model.predict(cases)
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return len(cases) / min(wall), len(cases) / min(cpu)


def single_latencies_ms(
    model, cases: Cases, n_requests: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU milliseconds of one-prefix requests drawn at random from ``cases``."""
    rows = np.random.default_rng(seed).integers(0, len(cases), n_requests)
    wall, cpu = np.empty(n_requests), np.empty(n_requests)
    for i, row in enumerate(rows):
        one = cases.subset(np.array([row]))
        start_wall, start_cpu = time.perf_counter(), time.thread_time()
        model.predict(one)
        wall[i] = (time.perf_counter() - start_wall) * 1e3
        cpu[i] = (time.thread_time() - start_cpu) * 1e3
    return wall, cpu


def measure(name: str, n_items: int, cases: Cases, args: argparse.Namespace) -> dict:
    params = plain(train_config([f"model={name}"]).model)
    params.pop("name")
    model = build_model(name, n_items=n_items, seed=0, **params)
    model.predict(cases.subset(np.arange(min(len(cases), 256))))  # warm-up: first-call setup
    wall_ms, cpu_ms = single_latencies_ms(model, cases, args.requests)
    wall_rate, cpu_rate = batched_rates(model, cases, args.repeats)
    return {
        "model": name,
        "n_items": n_items,
        "sessions/s": round(wall_rate),
        "sessions/cpu-s": round(cpu_rate),
        "p50 ms": float(np.percentile(wall_ms, 50)),
        "p99 ms": float(np.percentile(wall_ms, 99)),
        "p99 cpu-ms": float(np.percentile(cpu_ms, 99)),
        "cases": len(cases),
        "mean prefix": float(cases.lengths.mean()),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--vocab", nargs="+", type=int, help="n_items (default: sample's and 20k)")
    parser.add_argument("--requests", type=int, default=1000, help="single requests timed")
    parser.add_argument("--repeats", type=int, default=3, help="batched passes (best kept)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    cases, sample_items = real_cases()
    vocabularies = args.vocab or [sample_items, LARGE_VOCAB]
    if min(vocabularies) < sample_items:
        raise ValueError(
            f"--vocab must be >= the sample's {sample_items} items, got {vocabularies}"
        )
    rows = [measure(name, v, cases, args) for name in args.models for v in vocabularies]
    meta = {
        "command": " ".join(["benchmarks/inference_throughput.py", *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()} {platform.system()}, {len(os.sched_getaffinity(0))} CPUs",
        "load_average_1min": os.getloadavg()[0],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "goal_gru4rec_sessions_per_s": GOAL_SESSIONS_PER_S,
        "gru4rec_meets_goal_per_cpu_s_by_n_items": {
            r["n_items"]: r["sessions/cpu-s"] >= GOAL_SESSIONS_PER_S
            for r in rows
            if r["model"] == "gru4rec"
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "inference_throughput.json", {**meta, "rows": rows})
    print_table(rows, COLUMNS, title="next-step inference on one CPU core (torch threads = 1)")
    print(f"load average {meta['load_average_1min']:.1f} on {meta['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
