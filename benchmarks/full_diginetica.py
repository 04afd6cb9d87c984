"""Issue 12's benchmark table: fedpath on full Diginetica beside the published figures, with goals.

It runs nothing itself: it gathers what the runs wrote (each is costly and is rerun on its own):

- ``count_models_scale.json`` (benchmarks/count_models_scale.py): Markov and co-occurrence,
  centralized, and whether the partners' summed sketches decode to the centralized table;
- ``neural_scale*.json`` (benchmarks/neural_scale.py): neural models trained centrally;
- simulation runs given with ``--run LABEL=FOLDER`` (or its ``results.json``, kept in
  ``benchmarks/results/`` under a telling name) (``fedpath simulate
  data=diginetica_full partition=iid|dirichlet partners=10 …``): their federated, centralized and
  local-only rows (``results.json``), all scored on the same 60,858 test cases.

Then each of the issue's goals reads met, or how far it is.

    .venv/bin/python benchmarks/full_diginetica.py \
        --run "federated IID"=runs/simulate-diginetica_full-narm-fedavg-... \
        --run "federated Dirichlet(0.5)"=runs/...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from common import RESULTS

from fedpath.report import markdown_table, print_table
from fedpath.runfolder import write_json

# Published P@20 / MRR@20 (%) on the same 60,858 test cases (the papers' own tables).
PUBLISHED = {
    "GRU4Rec": (29.45, 8.33),
    "STAMP": (45.64, 14.32),
    "NARM": (49.70, 16.17),
    "SR-GNN": (50.73, 17.59),
    "GCE-GNN": (54.22, 19.04),
}
COLUMNS = ("model", "setting", "P@20 %", "MRR@20 %", "test cases", "source")
FEDERATED = "federated (union of partners' test)"
CENTRAL = "centralized (same data, same split)"
LOCAL = "local-only, mean over partners' own test"


def table_row(model: str, setting: str, p20: float, mrr20: float, cases: int, source: str) -> dict:
    return {
        "model": model,
        "setting": setting,
        "P@20 %": p20,
        "MRR@20 %": mrr20,
        "test cases": cases,
        "source": source,
    }


def count_rows(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Count models, centralized; federated equals them when the summed sketches decode exactly."""
    result = json.loads(path.read_text())
    rows, exact = [], True
    for run in result["rows"]:
        exact &= bool(run["federated_equals_centralized"])
        for setting in ("centralized", "federated (sketch sum = SecAgg+ sum, exact)"):
            if setting.startswith("federated") and not run["federated_equals_centralized"]:
                continue
            rows.append(
                table_row(
                    run["model"],
                    setting,
                    run["p@20_%"],
                    run["mrr@20_%"],
                    run["test_cases"],
                    path.name,
                )
            )
    return rows, exact


def neural_rows(paths: list[Path]) -> list[dict[str, Any]]:
    rows = []
    for path in paths:
        for run in json.loads(path.read_text())["runs"]:
            layer = (
                "full softmax"
                if run["item_negatives"] == 0
                else f"sampled softmax ({run['item_negatives']})"
            )
            rows.append(
                table_row(
                    run["model"],
                    f"centralized, {run['epochs_run']} epochs, {layer}",
                    run["p@20_%"],
                    run["mrr@20_%"],
                    run["test_cases"],
                    path.name,
                )
            )
    return rows


def simulation_rows(label: str, folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows of one `fedpath simulate` run, and its figures by system for the goals."""
    path = folder / "results.json" if folder.is_dir() else folder
    result = json.loads(path.read_text())
    by_system = {row["system"]: row for row in result["comparison"]}
    names = {FEDERATED: label, CENTRAL: "centralized (in the same simulation)", LOCAL: "local-only"}
    rows = [
        table_row(
            result["model"],
            f"{names[system]} ({len(result['rounds'])} round{'s' * (len(result['rounds']) != 1)})"
            if system == FEDERATED
            else names[system],
            100 * row["recall@20"],
            100 * row["mrr@20"],
            int(row["n_item_cases"]),
            path.name if folder.is_file() else folder.name,
        )
        for system, row in by_system.items()
        if system in names
    ]
    return rows, by_system


def goals(rows: list[dict[str, Any]], sims: dict[str, dict[str, Any]], exact: bool) -> list[str]:
    """Each goal of the issue as one line: met, or the distance."""
    central = [r for r in rows if r["setting"].startswith("centralized")]
    best = max(central, key=lambda r: r["P@20 %"])
    gce, srgnn = PUBLISHED["GCE-GNN"], PUBLISHED["SR-GNN"]
    lines = [
        _verdict(
            f"best centralized ({best['model']}, {best['setting']}) >= GCE-GNN {gce[0]} / {gce[1]}",
            (best["P@20 %"], best["MRR@20 %"]),
            gce,
        ),
        f"count models federated == centralized, array for array: {'met' if exact else 'NOT met'}",
    ]
    for label, systems in sims.items():
        fed, own, local = systems.get(FEDERATED), systems.get(CENTRAL), systems.get(LOCAL)
        if fed is None:
            continue
        ours = (100 * fed["recall@20"], 100 * fed["mrr@20"])
        lines.append(_verdict(f"{label} >= SR-GNN {srgnn[0]} / {srgnn[1]}", ours, srgnn))
        own_p20, own_name = (100 * own["recall@20"], "its own centralized") if own else (0, "")
        if own is None:  # a run without baselines: the same model's centralized benchmark run
            same = [r for r in central if r["model"] == best["model"]]
            own_p20, own_name = max(r["P@20 %"] for r in same), "the centralized benchmark run"
        if own_p20:
            ratio = ours[0] / own_p20
            lines.append(
                f"{label} / {own_name} P@20 = {ratio:.3f} (goal >= 0.97): "
                + ("met" if ratio >= 0.97 else f"{0.97 - ratio:.3f} short")
            )
        if local is not None:
            ratio = fed["recall@20"] / local["recall@20"]
            lines.append(
                f"{label} / mean local-only P@20 = {ratio:.2f} (goal >= 1.3): "
                + ("met" if ratio >= 1.3 else f"{1.3 - ratio:.2f} short")
            )
    return lines


def _verdict(goal: str, ours: tuple[float, float], bar: tuple[float, float]) -> str:
    gaps = [b - o for o, b in zip(ours, bar, strict=True)]
    if max(gaps) <= 0:
        return f"{goal}: met ({ours[0]:.2f} / {ours[1]:.2f})"
    return f"{goal}: not met, {ours[0]:.2f} / {ours[1]:.2f}, short by {gaps[0]:.2f} / {gaps[1]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", default=[], help="LABEL=run folder")
    parser.add_argument("--neural", nargs="*", default=None, help="neural_scale JSON files")
    args = parser.parse_args()
    rows, exact = count_rows(RESULTS / "count_models_scale.json")
    neural = args.neural or sorted(str(p) for p in RESULTS.glob("neural_scale*.json"))
    rows += neural_rows([Path(p) for p in neural if "timing" not in Path(p).name])
    sims = {}
    for spec in args.run:
        label, folder = spec.split("=", 1)
        sim_rows, sims[label] = simulation_rows(label, Path(folder))
        rows += sim_rows
    rows += [
        table_row(name, "published", *figures, 60858, "papers")
        for name, figures in PUBLISHED.items()
    ]
    verdicts = goals(rows, sims, exact)
    print_table(rows, COLUMNS, title="Full Diginetica: 60,858 test cases")
    print("\n".join(verdicts))
    write_json(
        RESULTS / "full_diginetica.json", {"rows": rows, "goals": verdicts, "runs": args.run}
    )
    (RESULTS / "full_diginetica.md").write_text(
        markdown_table(rows, COLUMNS) + "\n\nGoals:\n\n" + "".join(f"- {v}\n" for v in verdicts)
    )


if __name__ == "__main__":
    main()
