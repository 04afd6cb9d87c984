"""Issue 4's SecAgg+ "must show": secure round time over plain round time, real model, 10 and 100
partners.

Partners are dealt IID from a `fedpath synth` log (SYNTHETIC: a cost figure, never a quality
claim) and federate GRU4Rec as configured in `conf/model/gru4rec.yaml` (FedAvg, one local epoch
per round) under four fit steps, everything else equal:

- `plain`: SecAgg+ off (the explicit opt-out), the denominator;
- `N/2 shares`: SecAgg+ as the issue's first measurement used it, `num_shares = 0.5` of the
  sampled partners (Flower rounds it to an odd count: 5 of 10, 51 of 100);
- `all shares`: `num_shares = 1.0` (every partner shares with every other, the most robust to
  dropouts and O(N²) key shares and pairwise masks), the project's default until these figures;
- `log shares`: what SecAgg+ is designed for (Bell et al., 2020) and the project's default
  (`num_shares: log`): each partner shares with `2⌈log₂N⌉` neighbours plus itself (9 of 10,
  15 of 100).

Every SecAgg+ setting keeps the project's reconstruction threshold (0.67 of `num_shares`) and
quantization. The figure is the fit step's time (`RoundRecord.fit_seconds`: sampling to
aggregate, SecAgg+'s four stages included) of rounds 2..R (round 1 also starts Ray and its
workers). The machine is shared and its load drifts by 2x within minutes, so the four settings
run in turn, `--repeats` times over (plain, N/2, all, log, plain, N/2, ...): a setting's time is
the median over all its measured rounds, its ratio that median over plain's, and the spread is
the range of the ratios of each repetition (setting over the plain run just before it). Round
time including evaluation (`round_seconds`) is reported beside it.

    .venv/bin/python benchmarks/secagg_overhead.py            # 10 and 100 partners, 3 repeats
    .venv/bin/python benchmarks/secagg_overhead.py --quick    # 10 partners, 1 repeat, small log
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import RESULTS, data_source, plain, train_config
from fedbench import (
    federation_config,
    finish_meta,
    in_fresh_process,
    partner_count_parser,
    run_meta,
)

from fedpath.data.containers import SplitDataset
from fedpath.data.protocol import ProtocolConfig
from fedpath.federation.config import FederationConfig, SecAggSettings
from fedpath.report import print_table
from fedpath.runfolder import write_json
from fedpath.simulations.federation import run_federation
from fedpath.simulations.partition import PartitionConfig, partition
from fedpath.simulations.pipeline import PreparedData, prepare
from fedpath.strategies.workflow import log_shares

SIZES, QUICK_SIZES = (10, 100), (10,)
ROUNDS, QUICK_ROUNDS = 5, 3
REPEATS = 3
SESSIONS, QUICK_SESSIONS = 5_000, 1_000  # `fedpath synth`'s default size
FRACTION_EVALUATE = 0.1  # evaluation is not what is measured; keep it short
GOALS = {10: 1.2, 100: 2.0}  # issue 4: SecAgg+ / plain fit time at 10 and 100 partners
PLAIN = "plain"


@dataclass(frozen=True)
class Setting:
    """One fit step: a label, and the SecAgg+ settings it runs under."""

    label: str
    secagg: SecAggSettings
    shares: str  # in words, for the table


def settings_for(n_partners: int, labels: Sequence[str] | None = None) -> list[Setting]:
    """Plain, then the three SecAgg+ share choices (those named in ``labels``, if given)."""
    k = log_shares(n_partners)
    every = [
        Setting(PLAIN, SecAggSettings(enabled=False), "—"),
        Setting("N/2 shares", SecAggSettings(num_shares=0.5), "0.5 of sampled"),
        Setting("all shares", SecAggSettings(num_shares=1.0), "1.0 of sampled"),
        Setting("log shares", SecAggSettings(num_shares="log"), f"{k} (2⌈log₂N⌉+1, default)"),
    ]
    return [s for s in every if labels is None or s.label in labels]


def prepare_log(sessions: int, data: str = "synthetic") -> PreparedData:
    """``data`` (``conf/data``) under the benchmark protocol; a `fedpath synth` log has
    ``sessions`` sessions."""
    size = [f"data.n_sessions={sessions}"] if data == "synthetic" else []
    cfg = train_config([f"data={data}", *size])
    with tempfile.TemporaryDirectory() as run_dir:
        return prepare(data_source(cfg.data), ProtocolConfig(**plain(cfg.protocol)), Path(run_dir))


def federate(split: SplitDataset, n_partners: int, config: FederationConfig) -> dict[str, Any]:
    """Deal ``split`` to ``n_partners`` IID partners and federate; the rounds' records."""
    partners = partition(split, PartitionConfig(scheme="iid", n_partners=n_partners))
    result = run_federation(split, partners, config)
    return {
        "parameters": int(sum(w.size for w in result.weights.values())),
        "rounds": [r.row() for r in result.rounds],
        "seconds": result.seconds,
    }


def measure(
    data: PreparedData, n_partners: int, setting: Setting, rounds: int, repeat: int, model: str
) -> dict[str, Any]:
    """One setting in a fresh process; its fit and round times of rounds 2..R."""
    load = os.getloadavg()
    config = federation_config(
        model,
        rounds,
        fraction_evaluate=FRACTION_EVALUATE,
        secagg=setting.secagg,
        calibration=False,  # after training, outside the measured fit steps: only slows a run
    )
    run = in_fresh_process(federate, data.split, n_partners, config)
    later = run["rounds"][1:]
    return {
        "partners": n_partners,
        "setting": setting.label,
        "num_shares": setting.shares,
        "repeat": repeat,
        "fit_seconds": [r["fit_seconds"] for r in later],
        "round_seconds": [r["round_seconds"] for r in later],
        "dropped": sum(r["dropped"] for r in run["rounds"]),
        **run,
        "load_average_at_start": list(load),
    }


def _median(runs: Sequence[dict[str, Any]], key: str) -> float:
    return statistics.median(t for run in runs for t in run[key])


def summarize(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (size, setting): pooled median times, their ratio to plain, and the per-repeat range."""
    rows = []
    for n_partners, label in dict.fromkeys((r["partners"], r["setting"]) for r in runs):
        own = [r for r in runs if (r["partners"], r["setting"]) == (n_partners, label)]
        base = [r for r in runs if (r["partners"], r["setting"]) == (n_partners, PLAIN)]
        per_repeat = [
            statistics.median(run["fit_seconds"]) / statistics.median(plain_run["fit_seconds"])
            for run in own
            for plain_run in base
            if plain_run["repeat"] == run["repeat"]
        ]
        rows.append(
            {
                "partners": n_partners,
                "setting": label,
                "num_shares": own[0]["num_shares"],
                "runs": len(own),
                "fit_seconds": _median(own, "fit_seconds"),
                "fit_ratio": _median(own, "fit_seconds") / _median(base, "fit_seconds"),
                "fit_ratio_range": [min(per_repeat), max(per_repeat)],
                "round_seconds": _median(own, "round_seconds"),
                "round_ratio": _median(own, "round_seconds") / _median(base, "round_seconds"),
                "dropped": sum(r["dropped"] for r in own),
            }
        )
    return rows


COLUMNS = (
    "partners",
    "fit step",
    "num_shares",
    "fit s (median)",
    "fit / plain",
    "per-repeat range",
    "round s",
    "round / plain",
    "dropped",
    "goal",
)


def table_row(row: dict[str, Any]) -> dict[str, Any]:
    goal = GOALS.get(row["partners"])
    verdict = "—"
    if row["setting"] != PLAIN and goal is not None:
        verdict = f"{'<=' if row['fit_ratio'] <= goal else '>'} {goal}"
    low, high = row["fit_ratio_range"]
    cells = [
        row["partners"],
        row["setting"],
        row["num_shares"],
        f"{row['fit_seconds']:.2f}",
        f"{row['fit_ratio']:.2f}",
        f"{low:.2f}–{high:.2f}",
        f"{row['round_seconds']:.2f}",
        f"{row['round_ratio']:.2f}",
        row["dropped"],
        verdict,
    ]
    return dict(zip(COLUMNS, cells, strict=True))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    quick = "10 partners, 1 repeat, small log"
    parser = partner_count_parser(__doc__, quick=quick, sizes=SIZES, rounds=ROUNDS)
    parser.add_argument("--repeats", type=int, help=f"turns over the settings (default {REPEATS})")
    parser.add_argument(
        "--settings",
        nargs="+",
        choices=[s.label for s in settings_for(2)],
        help="fit steps to run (default: all four; plain is the denominator, keep it)",
    )
    parser.add_argument(
        "--data",
        default="synthetic",
        help="conf/data log (default synthetic; e.g. diginetica_full, taobao: real work)",
    )
    parser.add_argument("--model", default="gru4rec", help="conf/model model (default gru4rec)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    meta = run_meta("secagg_overhead.py", argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    repeats = args.repeats or (1 if args.quick else REPEATS)
    sessions = QUICK_SESSIONS if args.quick else SESSIONS
    data = prepare_log(sessions, args.data)
    runs = []
    for n_partners in sizes:
        for repeat in range(repeats):
            for setting in settings_for(n_partners, args.settings):
                runs.append(measure(data, n_partners, setting, rounds, repeat, args.model))
                print(
                    f"{n_partners} partners, {setting.label}, repeat {repeat}: fit "
                    f"{statistics.median(runs[-1]['fit_seconds']):.2f} s (median of rounds "
                    f"2..{rounds}), whole run {runs[-1]['seconds']:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
    rows = summarize(runs)
    parameters = runs[0]["parameters"]
    quick = " — QUICK" if args.quick else ""
    synthetic = args.data == "synthetic"
    log = f"SYNTHETIC log ({sessions} sessions)" if synthetic else f"{args.data} (real)"
    title = f"SecAgg+ / plain fit time, {args.model} ({parameters:,} numbers), {log}{quick}"
    print_table([table_row(r) for r in rows], COLUMNS, title=title)
    meta.update(
        synthetic=synthetic,
        data=args.data,
        model=args.model,
        sessions=sessions if synthetic else None,
        train_sessions=len(data.split.train),
        items=data.split.n_items,
        parameters=parameters,
        rounds=rounds,
        repeats=repeats,
        goals=GOALS,
    )
    name = "secagg_overhead_quick.json" if args.quick else "secagg_overhead.json"
    payload = {"meta": finish_meta(meta, started), "summary": rows, "runs": runs}
    out = write_json(args.out or RESULTS / name, payload)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
