"""Issue 4's scale "must show": a 1,000-partner simulation on this machine, its time and memory.

Partners come from a `fedpath synth` log (SYNTHETIC: a scale figure, never a quality claim),
dealt IID, and federate a *small* GRU4Rec (`conf/model/gru4rec.yaml` with 16-wide embedding and
hidden state: the cost under test is the federation's, not the model's) with FedAvg and SecAgg+
on (the project's defaults), 10% of the partners sampled per round to train and to evaluate.
The same run at 10, 100 and 1,000 partners shows how time grows with partners.

Each size runs in a fresh spawned process. Memory is the whole process tree of that process —
the driver, Ray's GCS and raylet, and every Ray worker playing partners — sampled every
half second from /proc: PSS (each shared page split among the processes sharing it, so the
sum is what the tree really occupies) and RSS (shared pages counted in every process: an upper
bound). Ray settings that bound it: `cpus_per_partner = 1` (Flower's pool starts
`CPUs / cpus_per_partner` = 2 worker processes here, `flwr/simulation/ray_transport/
ray_actor.py`, `pool_size_from_resources`), and an object store capped at `OBJECT_STORE_BYTES`
(`RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES`, read by `ray/_private/ray_constants.py`; Ray's own
default is 30% of the machine's memory).

    .venv/bin/python benchmarks/scale.py            # 10, 100 and 1,000 partners
    .venv/bin/python benchmarks/scale.py --quick    # 10 and 100 partners, 2 rounds, small log
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import RESULTS
from fedbench import (
    finish_meta,
    gru4rec_federation,
    in_fresh_process,
    partner_count_parser,
    run_meta,
)

from fedpath.data.protocol import ProtocolConfig
from fedpath.federation.config import FederationConfig
from fedpath.report import print_table
from fedpath.runfolder import write_json
from fedpath.simulations.federation import run_federation
from fedpath.simulations.partition import PartitionConfig, partition
from fedpath.simulations.pipeline import DataSource, prepare
from fedpath.synth import SynthConfig, run_synth

SIZES = (10, 100, 1000)
QUICK_SIZES = (10, 100)
FRACTION = 0.1  # share of partners sampled per round, to train and to evaluate
ROUNDS, QUICK_ROUNDS = 5, 2
SESSIONS, QUICK_SESSIONS = 20_000, 3_000  # synthetic sessions: >= 10 train sessions per partner
SMALL_MODEL = {"embedding_size": 16, "hidden_size": 16}
OBJECT_STORE_BYTES = 512 * 2**20
TIME_GOAL_S, MEMORY_GOAL_MB = 15 * 60, 4 * 1024
_KB_PER_MB = 1024


# ----------------------------------------------------------------------------- memory
def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from every process's /proc/<pid>/stat."""
    tree: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
        parent = int(text.rsplit(")", 1)[1].split()[1])
        tree[parent].append(int(stat.parent.name))
    return tree


def tree_memory_mb(root: int) -> tuple[float, float, int]:
    """PSS and RSS (MB) summed over ``root`` and all its descendants, and how many processes."""
    tree = _children()
    pending, pss, rss, count = [root], 0, 0, 0
    while pending:
        pid = pending.pop()
        pending.extend(tree.get(pid, []))
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:  # ended, or a kernel thread without memory
            continue
        fields = dict(line.split(":", 1) for line in rollup.splitlines()[1:])
        pss += int(fields["Pss"].split()[0])
        rss += int(fields["Rss"].split()[0])
        count += 1
    return pss / _KB_PER_MB, rss / _KB_PER_MB, count


# -------------------------------------------------------------------------------- runs
def simulate(log: Path, n_partners: int, config: FederationConfig) -> dict[str, Any]:
    """One size, end to end: read the log, partition it, federate."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        source = DataSource("synthetic", log, complete_sessions=True)
        data = prepare(source, ProtocolConfig(), Path(run_dir))
    partners = partition(data.split, PartitionConfig(scheme="iid", n_partners=n_partners))
    prepared = time.perf_counter() - start
    result = run_federation(data.split, partners, config)
    return {
        "partners": n_partners,
        "train_sessions": len(data.split.train),
        "items": data.split.n_items,
        "parameters": int(sum(w.size for w in result.weights.values())),
        "prepare_seconds": prepared,
        "federation_seconds": result.seconds,
        "rounds": [r.row() for r in result.rounds],
    }


class PeakMemory:
    """The largest process-tree memory seen over repeated samples."""

    def __init__(self) -> None:
        self.pss_mb = self.rss_mb = 0.0
        self.processes = 0

    def sample(self, root: int) -> None:
        pss, rss, count = tree_memory_mb(root)
        self.pss_mb, self.rss_mb = max(self.pss_mb, pss), max(self.rss_mb, rss)
        self.processes = max(self.processes, count)


def measure(log: Path, n_partners: int, config: FederationConfig) -> dict[str, Any]:
    """One size in a fresh process, its process tree sampled until it ends."""
    load = os.getloadavg()
    peak = PeakMemory()
    start = time.perf_counter()
    figures = in_fresh_process(simulate, log, n_partners, config, on_wait=peak.sample)
    return {
        **figures,
        "wall_seconds": time.perf_counter() - start,
        "peak_pss_mb": peak.pss_mb,
        "peak_rss_mb": peak.rss_mb,
        "peak_processes": peak.processes,
        "load_average_at_start": list(load),
    }


# ----------------------------------------------------------------------------- report
COLUMNS = (
    "partners",
    "sampled/round",
    "rounds",
    "wall s",
    "federation s",
    "round 1 s",
    "later rounds s (mean)",
    "peak PSS MB",
    "peak RSS MB",
    "processes",
)


def table_row(run: dict[str, Any]) -> dict[str, Any]:
    rounds = run["rounds"]
    later = [r["round_seconds"] for r in rounds[1:]]
    return dict(
        zip(
            COLUMNS,
            [
                run["partners"],
                rounds[0]["sampled"],
                len(rounds),
                f"{run['wall_seconds']:.0f}",
                f"{run['federation_seconds']:.0f}",
                f"{rounds[0]['round_seconds']:.1f}",
                f"{sum(later) / len(later):.1f}" if later else "n/a",
                f"{run['peak_pss_mb']:.0f}",
                f"{run['peak_rss_mb']:.0f}",
                run["peak_processes"],
            ],
            strict=True,
        )
    )


def verdict(run: dict[str, Any]) -> str:
    time_ok = run["wall_seconds"] < TIME_GOAL_S
    memory_ok = run["peak_pss_mb"] < MEMORY_GOAL_MB
    return (
        f"{run['partners']} partners: {run['wall_seconds'] / 60:.1f} min "
        f"({'<' if time_ok else '>='} {TIME_GOAL_S // 60} min goal), peak PSS "
        f"{run['peak_pss_mb'] / 1024:.2f} GiB ({'<' if memory_ok else '>='} "
        f"{MEMORY_GOAL_MB // 1024} GiB goal; RSS sum {run['peak_rss_mb'] / 1024:.2f} GiB)"
    )


# -------------------------------------------------------------------------------- cli
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    quick = "10 and 100 partners, 2 rounds"
    return partner_count_parser(__doc__, quick=quick, sizes=SIZES, rounds=ROUNDS).parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    meta = run_meta("scale.py", argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    sessions = QUICK_SESSIONS if args.quick else SESSIONS
    # Read by Ray when the spawned process imports it (ray/_private/ray_constants.py).
    os.environ["RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES"] = str(OBJECT_STORE_BYTES)
    # The small GRU4Rec under the project's default federation (FedAvg, SecAgg+ on), resolved
    # here: the spawned runs never see Hydra.
    config = gru4rec_federation(
        rounds,
        SMALL_MODEL,
        fraction_fit=FRACTION,
        fraction_evaluate=FRACTION,
        cpus_per_partner=1.0,
    )
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        log = run_synth(SynthConfig(n_sessions=sessions), Path(folder) / "scale.csv", seed=0)
        for size in sizes:
            runs.append(measure(log, size, config))
            print(verdict(runs[-1]), file=sys.stderr, flush=True)
    quick = " — QUICK" if args.quick else ""
    title = (
        f"Federation scale, SYNTHETIC log ({sessions} sessions), small GRU4Rec, SecAgg+ on{quick}"
    )
    print_table([table_row(r) for r in runs], COLUMNS, title=title)
    for run in runs:
        print(verdict(run))
    meta.update(
        synthetic=True,
        sessions=sessions,
        fraction_sampled=FRACTION,
        model={"name": config.model, **SMALL_MODEL},
        object_store_bytes=OBJECT_STORE_BYTES,
        goals={"wall_seconds": TIME_GOAL_S, "peak_pss_mb": MEMORY_GOAL_MB},
    )
    name = "scale_quick.json" if args.quick else "scale.json"
    out = write_json(args.out or RESULTS / name, {"meta": finish_meta(meta, started), "runs": runs})
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
