"""What session-level DP-SGD costs one partner of full Diginetica, beside its non-DP training.

Issue 12 item 6: a partner is one of 10 IID partners of ``data=diginetica_full`` (about 18.6k
train sessions, 43,097 items), training NARM with the federated settings of docs/scale.md
(sampled softmax with 2,048 negatives, Adam 1e-3, dropout 0.25; non-DP local batch 64).

- **DP-SGD** at each ``--rates`` q: ``--steps`` private steps, each on a Poisson sample of
  expected size q·n of the partner's n sessions. A step's cost depends on the sessions it
  samples, not on n, so the steps run as one epoch of ``--steps`` steps (q' = 1/steps) over a
  random q·n·steps of the partner's sessions: the same expected sessions a step, drawn from the
  same sessions. Figures: seconds per sampled session, per step, and per local epoch (1/q steps,
  extrapolated), and the process's peak resident memory while they run.
- **Non-DP**: ``--plain-steps`` mini-batch steps of 64 prefixes, extrapolated to an epoch over
  the partner's prefixes.

Each timed fit follows an untimed one of the same kind on a few sessions, so one-off costs
(imports on an optimizer's first step, first allocations) are not counted as training.

From those it projects a 10-partner, 3-round, 1-local-epoch DP federation (CPU-hours, and wall
hours with two partners training at once on two cores), and the noise multiplier that spends
ε = 8 and ε = 2 (δ = 1e-5) over that many steps at each q (``accountant.noise_for_epsilon``).
Seconds depend on the machine's load; the JSON records the load average before and after.

    .venv/bin/python benchmarks/dp_scale.py                                  # q = 0.01, 0.05
    .venv/bin/python benchmarks/dp_scale.py --max-sessions 400 --steps 2 --plain-steps 4  # smoke
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import RESULTS, data_source, peak_rss_mb, plain, reset_peak_rss, train_config
from torch import nn

from fedpath.data.cases import expand_prefixes
from fedpath.data.protocol import ProtocolConfig
from fedpath.models.registry import build_model
from fedpath.privacy.dp.accountant import noise_for_epsilon
from fedpath.privacy.dp.config import SessionDP
from fedpath.privacy.dp.session import SessionDPSGD
from fedpath.report import markdown_table, print_table
from fedpath.runfolder import write_json
from fedpath.simulations.partition import PartitionConfig, partition
from fedpath.simulations.pipeline import prepare

PARTNERS, ROUNDS, LOCAL_EPOCHS = 10, 3, 1
DELTA, EPSILONS = 1e-5, (8.0, 2.0)
NOISE_RATES = (0.01, 0.02, 0.05, 0.1, 0.25)  # the noise table's sample rates (0.25: the default)
BATCH = 64  # non-DP local batch of the federated runs (docs/scale.md)
# The federated NARM of docs/scale.md; DP-SGD's noise does not change a step's cost.
FEDERATED = {
    "item_negatives": 2048,
    "optimizer": "adam",
    "lr": 0.001,
    "momentum": 0.0,
    "dropout": 0.25,
    "batch_size": BATCH,
    "epochs": 1,
    "patience": 1,
}
COLUMNS = (
    "training",
    "sessions/step",
    "ms/session",
    "s/step",
    "steps/epoch",
    "s/epoch",
    "peak MiB",
    "10x3 CPU h",
    "10x3 wall h (2 cores)",
)


class _CountingDPSGD(SessionDPSGD):
    """Session DP-SGD that counts the sessions its steps sample (for seconds per session)."""

    sampled = 0

    def clipped_sum(
        self,
        params: list[nn.Parameter],
        batch: list[torch.Tensor],
        loss_of: Callable[[torch.Tensor], torch.Tensor],
    ) -> tuple[list[torch.Tensor], list[float]]:
        self.sampled += len(batch)
        return super().clipped_sum(params, batch, loss_of)


def _partner_sessions(max_sessions: int | None) -> tuple[list[Any], int]:
    """The first of 10 IID partners' train sessions of full Diginetica, and the item count."""
    cfg = train_config(["data=diginetica_full"])
    with tempfile.TemporaryDirectory() as run_dir:
        data = prepare(data_source(cfg.data), ProtocolConfig(**plain(cfg.protocol)), Path(run_dir))
    partner = partition(data.split, PartitionConfig(scheme="iid", n_partners=PARTNERS))[0]
    return list(partner.data.train)[:max_sessions], data.split.n_items


def _timed_fit(model: Any, cases: Any) -> tuple[float, float]:
    """Wall seconds of ``model.fit(cases)`` and the process's peak resident MiB during it (the
    prepared log included: the memory a partner process holding its data would need)."""
    reset_peak_rss()
    started = time.perf_counter()
    model.fit(cases)
    return time.perf_counter() - started, peak_rss_mb()


def _projection(epoch_s: float) -> dict[str, float]:
    cpu_h = PARTNERS * ROUNDS * LOCAL_EPOCHS * epoch_s / 3600
    return {"10x3 CPU h": cpu_h, "10x3 wall h (2 cores)": cpu_h / 2}


def dp_row(sessions: list[Any], n_items: int, rate: float, steps: int, seed: int) -> dict:
    """``steps`` DP-SGD steps of expected size ``rate * len(sessions)`` (module doc)."""
    per_step = rate * len(sessions)
    rng = np.random.default_rng(seed)
    drawn = rng.choice(len(sessions), min(len(sessions), round(per_step * steps)), replace=False)
    trainer = _CountingDPSGD(SessionDP(noise_multiplier=1.0, clip_norm=1.0, sample_rate=1 / steps))
    model = build_model("narm", n_items=n_items, seed=seed, private=trainer, **FEDERATED)
    wall, peak_mib = _timed_fit(model, expand_prefixes([sessions[i] for i in sorted(drawn)]))
    step_s = wall / steps
    steps_per_epoch = SessionDP(sample_rate=rate).steps_per_epoch
    return {
        "training": f"DP-SGD q={rate:g}",
        "sessions/step": trainer.sampled / steps,
        "ms/session": 1000 * wall / max(trainer.sampled, 1),
        "s/step": step_s,
        "steps/epoch": steps_per_epoch,
        "s/epoch": step_s * steps_per_epoch,
        "peak MiB": peak_mib,
        **_projection(step_s * steps_per_epoch),
    }


def plain_row(sessions: list[Any], n_items: int, steps: int, seed: int) -> dict[str, Any]:
    """``steps`` mini-batch steps of ``BATCH`` random prefixes, extrapolated to an epoch."""
    cases = expand_prefixes(sessions)
    rows = np.random.default_rng(seed).choice(len(cases), min(len(cases), steps * BATCH), False)
    model = build_model("narm", n_items=n_items, seed=seed, **FEDERATED)
    wall, peak_mib = _timed_fit(model, cases.subset(np.sort(rows)))
    step_s = wall / -(-len(rows) // BATCH)
    steps_per_epoch = -(-len(cases) // BATCH)
    return {
        "training": f"non-DP batch {BATCH}",
        "sessions/step": BATCH * len(sessions) / len(cases),
        "ms/session": 1000 * step_s * steps_per_epoch / len(sessions),
        "s/step": step_s,
        "steps/epoch": steps_per_epoch,
        "s/epoch": step_s * steps_per_epoch,
        "peak MiB": peak_mib,
        **_projection(step_s * steps_per_epoch),
    }


def noise_rows(rates: Sequence[float], n_sessions: int, n_params: int) -> list[dict[str, Any]]:
    """The noise multiplier for each target ε over the 10 x 3 run's steps at each rate, and the
    norm of a step's noise on the mean gradient, σ·C·√P / (q·n), in clip norms C: the clipped
    signal of a step is at most one C."""
    rows = []
    for rate in rates:
        steps = ROUNDS * LOCAL_EPOCHS * SessionDP(sample_rate=rate).steps_per_epoch
        row: dict[str, Any] = {"q": rate, "sessions/step": rate * n_sessions, "steps": steps}
        for target in EPSILONS:
            sigma = noise_for_epsilon(epsilon=target, sample_rate=rate, steps=steps, delta=DELTA)
            row[f"σ for ε={target:g}"] = sigma
            row[f"noise/C, ε={target:g}"] = sigma * n_params**0.5 / (rate * n_sessions)
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.01, 0.05])
    parser.add_argument("--steps", type=int, default=3, help="DP-SGD steps timed per rate")
    parser.add_argument("--plain-steps", type=int, default=40, help="non-DP steps timed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a partner's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-sessions", type=int, default=None, help="smoke: first N sessions")
    parser.add_argument("--out", default=None, help="result name (dp_scale; smoke: -smoke)")
    args = parser.parse_args(argv)
    out = args.out or ("dp_scale" if args.max_sessions is None else "dp_scale-smoke")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    sessions, n_items = _partner_sessions(args.max_sessions)
    plain_row(sessions[:50], n_items, 2, args.seed)  # warm-up, untimed
    dp_row(sessions[:50], n_items, 0.5, 2, args.seed)
    rows = [plain_row(sessions, n_items, args.plain_steps, args.seed)]
    for rate in args.rates:
        rows.append(dp_row(sessions, n_items, rate, args.steps, args.seed))
        print(rows[-1], file=sys.stderr, flush=True)
    for row in rows[1:]:
        row["DP/non-DP epoch"] = row["s/epoch"] / rows[0]["s/epoch"]
    n_params = sum(p.numel() for p in build_model("narm", n_items=n_items).network_.parameters())
    noise = noise_rows(sorted({*NOISE_RATES, *args.rates}), len(sessions), n_params)
    load_after = os.getloadavg()
    columns = [*COLUMNS, "DP/non-DP epoch"]
    print_table(rows, columns, title=f"one partner of {PARTNERS} on full Diginetica, NARM")
    print_table(noise, list(noise[0]), title=f"{ROUNDS} rounds of {LOCAL_EPOCHS} epoch, δ={DELTA}")
    command = " ".join([".venv/bin/python benchmarks/dp_scale.py", *(argv or sys.argv[1:])])
    result = {
        "command": command,
        "threads": args.threads,
        "partner_sessions": len(sessions),
        "n_items": n_items,
        "n_params": n_params,
        "load_before": load_before,
        "load_after": load_after,
        "rows": rows,
        "noise": noise,
    }
    write_json(RESULTS / f"{out}.json", result)
    (RESULTS / f"{out}.md").write_text(
        f"`{command}` (load {load_before[0]:.2f} -> {load_after[0]:.2f}, "
        f"{len(sessions)} partner sessions)\n\n"
        + markdown_table(rows, columns)
        + "\n\n"
        + markdown_table(noise, list(noise[0]))
        + "\n"
    )


if __name__ == "__main__":
    main()
