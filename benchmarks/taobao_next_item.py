"""Issue 12 item 5's table: next-item quality on Taobao-772, federated by category partners.

Like ``full_diginetica.py`` it trains nothing: each ``fedpath simulate data=taobao
partition=natural partition.by=category partners=N model=M`` run (with its baselines) gives one
model's centralized, federated and local-only rows on the same test cases; this script sets them
beside the peer's RecBole figures on the same protocol (``../shared/notes/evaluation-protocol.md``,
2,173 test cases, s.e. of R@20 about 0.009) and reads each goal as met or its distance:
best fedpath neural >= the peer's best neural (SASRec) and >= co-occurrence, centrally and
federated.

    .venv/bin/python benchmarks/taobao_next_item.py --run runs/simulate-taobao-gru4rec-... \\
        --run runs/simulate-taobao-cooccurrence-... --train "sasrec, item loss only"=metrics.json \\
        --run "federated by category partners, item_rows: seen"=runs/simulate-taobao-gru4rec-...
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from common import RESULTS
from full_diginetica import COLUMNS, simulation_rows, table_row

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


def goals(rows: list[dict[str, Any]]) -> list[str]:
    """Best neural vs the peer's best neural and vs co-occurrence, centrally and federated."""
    ours = [r for r in rows if not r["setting"].startswith("peer")]
    cooc = [r for r in ours if r["model"] == "cooccurrence" and r["setting"].startswith("central")]
    lines = []
    for kind in ("centralized", "federated"):
        neural = [
            r for r in ours if r["model"] not in COUNT_MODELS and r["setting"].startswith(kind)
        ]
        if not neural:
            continue
        best = max(neural, key=lambda r: r["P@20 %"])
        bars = [(f"the peer's {PEER_BEST_NEURAL}", PEER[PEER_BEST_NEURAL])]
        bars += [("fedpath co-occurrence", (r["P@20 %"], r["MRR@20 %"])) for r in cooc[:1]]
        for bar_name, bar in bars:
            gap = bar[0] - best["P@20 %"]
            se = standard_error(bar[0], best["test cases"])
            verdict = (
                "met"
                if gap <= 0
                else f"not met, short by {gap:.2f} points ({gap / se:.1f} s.e. of {se:.2f})"
            )
            lines.append(
                f"best {kind} neural ({best['model']}, {best['setting']}: "
                f"{best['P@20 %']:.2f} / {best['MRR@20 %']:.2f}) >= {bar_name} "
                f"({bar[0]:.2f} / {bar[1]:.2f}) on R@20: {verdict}"
            )
    return lines


def train_rows(label: str, path: Path) -> list[dict[str, Any]]:
    """A `fedpath train` run (its ``metrics.json``): one centralized row, test split."""
    test = json.loads(path.read_text())["test"]
    setting = f"centralized, fedpath train ({label})"
    n = int(test["n_item_cases"])
    return [
        table_row(
            label.split(",")[0].strip(),
            setting,
            100 * test["recall@20"],
            100 * test["mrr@20"],
            n,
            path.name,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--run", action="append", default=[], help="[LABEL=]simulate run folder or JSON"
    )
    parser.add_argument("--train", action="append", default=[], help="LABEL=metrics.json")
    parser.add_argument("--out", default=str(RESULTS / "taobao_next_item"))
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for spec in args.run:
        label, _, folder = spec.rpartition("=")
        rows += simulation_rows(label or "federated by category partners", Path(folder))[0]
    for spec in args.train:
        label, path = spec.split("=", 1)
        rows += train_rows(label, Path(path))
    rows += [table_row(name, "peer (RecBole)", *f, PEER_CASES, "notes") for name, f in PEER.items()]
    verdicts = goals(rows)
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
