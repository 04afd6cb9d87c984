"""Markov and co-occurrence at catalogue scale: full Diginetica (43,097 items), one core.

Issue 12 item 2: fit + evaluate in < 2 GiB peak RSS and minutes, and a federation that stays
exact with a payload sized by the data, not items². Each model runs in a fresh process (its
peak RSS is its own; ``ru_maxrss``, what ``/usr/bin/time -v`` reports as "Maximum resident set
size"): fit on every prefix of the 186,670 train sessions, evaluate P@20 (= Recall@20) and
MRR@20 on the 60,858 test cases (every prefix of every test session, full ranking, no masking).
Then the federation's wire, without Flower: the train sessions dealt round-robin to
``--partners`` partners, each partner's table sketched (``fedpath.federation.pair_sketch``) at
``pair_cells`` (under ``auto``, the YAML default, at ``cells_for`` of the partners' summed
distinct pairs, as the size round agrees it), the sketches summed as the secure sum would,
decoded, and compared with the centralized table array for array.

The log is read here (pandas, the gzip CSV of ../shared/data/diginetica-full, already
preprocessed: its README says not to filter again); item ``i`` is vocabulary index ``i - 1``.

    taskset -c 0 .venv/bin/python benchmarks/count_models_scale.py
    .venv/bin/python benchmarks/count_models_scale.py --models markov --partners 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Session
from fedpath.evaluate import evaluate
from fedpath.federation.pair_sketch import FIELDS, cells_for
from fedpath.federation.spec import ModelSpec
from fedpath.models.pairs import AUTO, PairCountModel

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA = REPO.parent / "shared" / "data" / "diginetica-full" / "sessions.csv.gz"
N_ITEMS = 43_097
MODELS = ("markov", "cooccurrence")
PUBLISHED = "GRU4Rec 29.45 / 8.33, NARM 49.70 / 16.17, SR-GNN 50.73 / 17.59, GCE-GNN 54.22 / 19.04"


def read_sessions(path: Path) -> dict[str, list[Session]]:
    """Train and test sessions in file order (views only: every action is VIEW)."""
    frame = pd.read_csv(path, dtype={"split": "category"}).sort_values(
        ["session_id", "position"], kind="stable"
    )
    items = frame["item_id"].to_numpy(np.int64) - 1
    ids = frame["session_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    bounds = np.r_[starts, len(ids)]
    splits = frame["split"].to_numpy()[starts]
    out: dict[str, list[Session]] = {"train": [], "test": []}
    for n, (begin, end) in enumerate(itertools.pairwise(bounds)):
        chunk = items[begin:end]
        views = np.zeros(len(chunk), np.int8)
        session = Session(key=str(ids[begin]), items=chunk, actions=views, start=n)
        out[str(splits[n])].append(session)
    return out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_model(name: str, partners: int, pair_cells: int | str, batch_size: int) -> dict[str, Any]:
    """One model, in this process: fit, evaluate, then the federation's sketch sum."""
    started = time.perf_counter()
    sessions = read_sessions(DATA)
    train, test = expand_prefixes(sessions["train"]), expand_prefixes(sessions["test"])
    load_s = time.perf_counter() - started

    spec = ModelSpec(name, n_items=N_ITEMS, params={"pair_cells": pair_cells})
    started = time.perf_counter()
    model = spec.build().fit(train)
    fit_s = time.perf_counter() - started
    assert isinstance(model, PairCountModel)
    started = time.perf_counter()
    metrics = evaluate(model, test, ks=(20,), batch_size=batch_size)
    evaluate_s = time.perf_counter() - started
    peak_model = peak_rss_mib()

    # The federation's wire: partners' sketches summed (as the secure sum does), decoded.
    started = time.perf_counter()

    def partner_fit(partner: int) -> PairCountModel:
        own = spec.build().fit(expand_prefixes(sessions["train"][partner::partners]))
        assert isinstance(own, PairCountModel)
        return own

    bound = None
    if spec.sized_by_run:  # the size round: the partners' distinct pairs, summed
        bound = sum(partner_fit(partner).pair_counts().nnz for partner in range(partners))
        cells = cells_for(bound)
    else:
        cells = int(pair_cells)
    total = None
    for partner in range(partners):
        wire = spec.to_arrays(partner_fit(partner).get_weights(), pair_cells=cells)
        total = wire if total is None else [a + b for a, b in zip(total, wire, strict=True)]
    assert total is not None
    federated = spec.from_arrays(total)
    sketch_s = time.perf_counter() - started
    central = model.get_weights()
    exact = (
        all(
            np.array_equal(federated[k], central[k]) and federated[k].dtype == central[k].dtype
            for k in central
        )
        and federated.keys() == central.keys()
    )
    payload = sum(np.asarray(a).size for a in total)
    return {
        "model": name,
        "train_cases": len(train),
        "test_cases": int(metrics["n_item_cases"]),
        "p@20_%": 100 * metrics["recall@20"],
        "mrr@20_%": 100 * metrics["mrr@20"],
        "load_s": load_s,
        "fit_s": fit_s,
        "evaluate_s": evaluate_s,
        "peak_rss_mib_fit_evaluate": peak_model,
        "pairs_nnz": int(model.pair_counts().nnz),
        "pair_cells_setting": pair_cells,
        "size_bound_pairs": bound,  # the partners' summed distinct pairs, under auto
        "pair_cells": cells,
        "cells_per_pair": cells / model.pair_counts().nnz,
        "partners": partners,
        "wire_values_per_partner": payload,
        "wire_mib_per_partner_float64": payload * 8 / 2**20,
        "dense_wire_values": N_ITEMS * N_ITEMS,
        "sketch_fields": FIELDS,
        "sketch_sum_decode_s": sketch_s,
        "federated_equals_centralized": bool(exact),
        "peak_rss_mib_total": peak_rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--partners", type=int, default=5)
    parser.add_argument("--pair-cells", default=None, help="auto or an int (the YAML's)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--one", choices=MODELS, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.one:
        cells = args.pair_cells or ModelSpec(args.one, n_items=N_ITEMS).build().pair_cells
        cells = cells if cells == AUTO else int(cells)
        print(json.dumps(run_model(args.one, args.partners, cells, args.batch_size)))
        return
    rows = []
    for name in args.models:
        command = [sys.executable, __file__, "--one", name, "--partners", str(args.partners)]
        command += ["--batch-size", str(args.batch_size)]
        command += ["--pair-cells", str(args.pair_cells)] if args.pair_cells else []
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    load = os.getloadavg()
    header = "| model | P@20 % | MRR@20 % | test cases | fit s | evaluate s | peak RSS MiB |"
    header += " pairs (nnz) | cells | wire MiB/partner | fed == central |"
    lines = [header, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['p@20_%']:.2f} | {r['mrr@20_%']:.2f} | {r['test_cases']:,} | "
            f"{r['fit_s']:.1f} | {r['evaluate_s']:.1f} | {r['peak_rss_mib_fit_evaluate']:.0f} | "
            f"{r['pairs_nnz']:,} | {r['pair_cells']:,} | {r['wire_mib_per_partner_float64']:.0f} | "
            f"{r['federated_equals_centralized']} |"
        )
    table = "\n".join(lines)
    print(table)
    note = (
        f"\nFull Diginetica, one process per model, `{' '.join(sys.argv)}`; load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end on {os.cpu_count()} cores. "
        f"Published P@20 / MRR@20 (%): {PUBLISHED}.\n"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "count_models_scale.md").write_text(table + "\n" + note, encoding="utf-8")
    (RESULTS / "count_models_scale.json").write_text(
        json.dumps({"rows": rows, "loadavg": load, "command": sys.argv}, indent=2) + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
