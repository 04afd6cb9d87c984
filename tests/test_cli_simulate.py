"""`fedpath simulate` end to end: a real Flower simulation with SecAgg+, via the installed CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import run_cli


def test_simulate_count_model_under_secagg_matches_centralized(tmp_path: Path) -> None:
    # Prepare / Execute: 4 natural partners (the generator's platforms), SecAgg+ on by default
    proc = run_cli(
        "simulate",
        "model=markov",
        "strategy=sum",
        "rounds=2",
        "data.n_sessions=500",
        f"out={tmp_path}",
    )

    # Assert: the side-by-side table printed, and the run folder holds what the issue asks for
    assert "federated/centralized recall@20: 1.000" in proc.stdout
    # ... and no Flower / Ray warning a newcomer must learn to ignore (fedpath/quiet.py)
    noise = [line for line in (proc.stdout + proc.stderr).splitlines() if "WARN" in line.upper()]
    assert not noise, noise
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["secagg"] is True and results["synthetic"] is True
    assert results["partners"] == 4
    systems = {row["system"]: row for row in results["comparison"]}
    federated = systems["federated (union of partners' test)"]
    centralized = systems["centralized (same data, same split)"]
    assert federated == {**centralized, "system": federated["system"]}  # summed counts: exact
    with (run_dir / "rounds.csv").open() as handle:
        rounds = list(csv.DictReader(handle))
    assert [int(r["round"]) for r in rounds] == [1, 2]
    assert all(int(r["participants"]) == 4 and int(r["dropped"]) == 0 for r in rounds)
    report = (run_dir / "report.md").read_text()
    assert "SecAgg+ on" in report and "local-only, worst partner" in report
    assert "SYNTHETIC" in report
    # the natural partners (the generator's platforms) and the groups behind each name
    mapping = json.loads((run_dir / "partners.json").read_text())
    assert all(groups == [name] for name, groups in mapping.items()) and len(mapping) == 4
    for name in ("config.yaml", "model.safetensors", "rounds.png", "partners.png"):
        assert (run_dir / name).stat().st_size > 0, name
