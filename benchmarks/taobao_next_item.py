"""Issue 12 item 5's table: next-item quality on Taobao-772, federated by category partners.

Like ``full_diginetica.py`` it trains nothing: each ``fedpath simulate data=taobao
partition=natural partition.by=category partners=N model=M`` run (with its baselines) gives one
model's centralized, federated and local-only rows on the same test cases; this script sets them
beside the peer's RecBole figures on the same protocol (``../shared/notes/evaluation-protocol.md``,
2,173 test cases, s.e. of R@20 about 0.009) and reads each goal as met or its distance:
best fedpath neural >= the peer's best neural (SASRec) and >= co-occurrence, centrally and
federated.

    .venv/bin/python benchmarks/taobao_next_item.py \\
        --run sasrec=runs/simulate-taobao-sasrec-fedavg-... --run cooccurrence=runs/...
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from common import RESULTS
from full_diginetica import CENTRAL, COLUMNS, FEDERATED, simulation_rows, table_row

from fedpath.report import markdown_table, print_table
from fedpath.runfolder import write_json

# The peer's RecBole 1.2.1 figures, R@20 / MRR@20 in %, on the same 2,173 test cases.
PEER = {
    "popularity": (1.2, 0.2),
    "first-order Markov": (10.6, 7.6),
    "session co-occurrence": (24.4, 8.8),
    "GRU4Rec (batch 256)": (10.5, 5.1),
    "NARM (batch 256)": (17.9, 7.4),
    "SASRec (batch 256)": (24.0, 8.8),
}
PEER_BEST_NEURAL = "SASRec (batch 256)"
PEER_CASES = 2173
COUNT_MODELS = ("popularity", "markov", "cooccurrence")


def standard_error(p20_percent: float, cases: int) -> float:
    """Binomial standard error of a P@20 in %: the yardstick for "a real gap" on this log."""
    p = p20_percent / 100
    return 100 * math.sqrt(p * (1 - p) / cases)


def goals(sims: dict[str, dict[str, Any]], models: dict[str, str]) -> list[str]:
    """Best neural vs the peer's best neural and vs co-occurrence, centrally and federated."""
    lines = []
    peer = PEER[PEER_BEST_NEURAL]
    for system, name in ((CENTRAL, "centralized"), (FEDERATED, "federated")):
        scored = {
            label: (100 * run[system]["recall@20"], 100 * run[system]["mrr@20"])
            for label, run in sims.items()
            if system in run
        }
        neural = {k: v for k, v in scored.items() if models[k] not in COUNT_MODELS}
        if not neural:
            continue
        best = max(neural, key=lambda k: neural[k][0])
        ours = neural[best]
        cases = int(sims[best][system]["n_item_cases"])
        se = standard_error(ours[0], cases)
        bars = [(f"the peer's {PEER_BEST_NEURAL}", peer)]
        bars += [(f"fedpath {k}", v) for k, v in scored.items() if models[k] == "cooccurrence"]
        for bar_name, bar in bars:
            gap = bar[0] - ours[0]
            verdict = (
                "met"
                if gap <= 0
                else f"not met, short by {gap:.2f} points ({gap / se:.1f} s.e. of {se:.2f})"
            )
            lines.append(
                f"best {name} neural ({best}: {ours[0]:.2f} / {ours[1]:.2f}) "
                f">= {bar_name} ({bar[0]:.2f} / {bar[1]:.2f}) on R@20: {verdict}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", default=[], help="LABEL=run folder")
    parser.add_argument("--out", default=str(RESULTS / "taobao_next_item"))
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    sims, models = {}, {}
    for spec in args.run:
        label, folder = spec.split("=", 1)
        sim_rows, sims[label] = simulation_rows("federated by category partners", Path(folder))
        models[label] = sim_rows[0]["model"]
        rows += sim_rows
    rows += [table_row(name, "peer (RecBole)", *f, PEER_CASES, "notes") for name, f in PEER.items()]
    verdicts = goals(sims, models)
    title = "Taobao-772 by category partners: R@20 (= P@20) / MRR@20 in %"
    print_table(rows, COLUMNS, title=title)
    print("\n".join(verdicts))
    out = Path(args.out)
    write_json(out.with_suffix(".json"), {"rows": rows, "goals": verdicts, "runs": args.run})
    out.with_suffix(".md").write_text(
        markdown_table(rows, COLUMNS) + "\n\nGoals:\n\n" + "".join(f"- {v}\n" for v in verdicts)
    )


if __name__ == "__main__":
    main()
