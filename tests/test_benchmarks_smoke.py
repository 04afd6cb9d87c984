"""The core-model benchmark: its verdict arithmetic by hand, and one real run of the script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO

SCRIPT = REPO / "benchmarks" / "core_models.py"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/core_models.py as a module (it imports its sibling `common` by name)."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import core_models

    return core_models


def _run(log: str, model: str, seed: int, recall20: float, n_item_cases: int) -> dict:
    test = {m: 0.0 for m in ("recall@10", "mrr@20", "ndcg@20", "action_accuracy")}
    test.update({"recall@20": recall20, "conversion_auc": float("nan")})
    test["n_item_cases"] = float(n_item_cases)
    return {
        "log": log,
        "model": model,
        "seed": seed,
        "test": test,
        "train_seconds": 1.0,
        "peak_mb": 100.0,
        "fit_mb": 1.0,
    }


def test_the_peers_best_neural_figures_are_the_issues(bench: ModuleType) -> None:
    # Prepare / Execute: the peer's best neural row of each log
    best = {log: bench.peer_for(log) for log in bench.LOGS}

    # Assert: issue 3 names them: Diginetica 0.511, REES46 0.620
    assert (best["diginetica"].label, best["diginetica"].metric("recall@20")) == (
        "SASRec (batch 256)",
        0.511,
    )
    assert (best["rees46"].label, best["rees46"].metric("recall@20")) == ("SASRec", 0.620)


def test_standing_against_the_peer_and_the_cooccurrence_bar(bench: ModuleType) -> None:
    # Prepare: SASRec at 0.50 and 0.56 over two seeds, co-occurrence at 0.641, 92 test cases
    runs = [
        _run("rees46", "cooccurrence", 0, 0.641, 92),
        _run("rees46", "sasrec", 0, 0.50, 92),
        _run("rees46", "sasrec", 1, 0.56, 92),
    ]

    # Execute
    stand = bench.standing(bench.summarize(runs), "rees46")

    # Assert: by hand, SE = sqrt(0.62 * 0.38 / 92) = 0.05061; (0.53 - 0.62) / SE = -1.778,
    # inside two SE; the bar's SE = sqrt(0.641 * 0.359 / 92) = 0.05000, (0.53 - 0.641) / it = -2.22
    assert stand["best_neural"] == "sasrec"
    assert stand["recall@20"]["mean"] == pytest.approx(0.53)
    assert stand["recall@20"]["std"] == pytest.approx(0.0424264, abs=1e-6)
    assert stand["se"] == pytest.approx(0.05061, abs=1e-5)
    assert stand["gap_in_se"] == pytest.approx(-1.778, abs=1e-3)
    assert stand["within_two_se"] is True
    assert stand["cooccurrence"]["difference"] == pytest.approx(-0.111)
    assert stand["cooccurrence"]["gap_in_se"] == pytest.approx(-2.220, abs=1e-3)


def test_a_shortfall_beyond_two_standard_errors_is_called_so(bench: ModuleType) -> None:
    # Prepare: 0.45 on Diginetica's 266 cases; the peer's 0.511 has SE 0.03065 (by hand)
    runs = [_run("diginetica", "narm", 0, 0.45, 266)]

    # Execute
    stand = bench.standing(bench.summarize(runs), "diginetica")

    # Assert: 0.511 - 2 * 0.03065 = 0.4497 < 0.45 is inside; so move below it and check again
    assert stand["within_two_se"] is True
    runs = [_run("diginetica", "narm", 0, 0.449, 266)]
    assert bench.standing(bench.summarize(runs), "diginetica")["within_two_se"] is False


def test_quick_markov_run_on_rees46_gives_the_notes_figures(
    shared_data: Path, tmp_path: Path
) -> None:
    # Prepare / Execute: the script as a user runs it, results into a scratch folder
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--models", "markov", "--logs", "rees46",
         "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    # Assert: the note's first-order Markov row on REES46 (R@10 0.478, R@20 0.533, MRR@20 0.315,
    # NDCG@20 0.366), the peer's figures beside it, and the Markdown table written
    result = json.loads((tmp_path / "core_models-quick.json").read_text())
    (row,) = result["rows"]
    assert (row["log"], row["model"], row["n_test_item_cases"]) == ("rees46", "markov", 92)
    for metric, figure in [("recall@10", 0.478), ("recall@20", 0.533), ("mrr@20", 0.315),
                           ("ndcg@20", 0.366)]:  # fmt: skip
        assert row[metric]["mean"] == pytest.approx(figure, abs=0.0005)
        assert row["peer"][metric] == figure
    assert row["peak_mb"]["mean"] > 0
    assert "| rees46 | markov |" in (tmp_path / "core_models-quick.md").read_text()
    assert "rees46 markov: reproduces the note's four figures" in proc.stdout


def test_runs_on_different_model_code_are_flagged(bench: ModuleType) -> None:
    # Prepare: one benchmark whose runs all imported the same models, one that did not
    same, mixed = {"model_code": ["a1"]}, {"model_code": ["a1", "b2"]}

    # Execute / Assert
    assert bench.mixed_code_warning(same) == []
    (warning,) = bench.mixed_code_warning(mixed)
    assert warning.startswith("WARNING: the model code changed") and "b2" in warning
