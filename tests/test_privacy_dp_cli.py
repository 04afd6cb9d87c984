"""`fedpath simulate privacy=session` end to end through the installed CLI: ε per round and at the
end in results.json and report.md, the ledgers kept outside the run, the DP entry in the audit.

Marked slow (a CLI process, Hydra, data generation and a 2-round Ray simulation: 1-2 minutes on
busy cores); the mechanisms it wires are tested in the default suite by test_privacy_dp_*.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from fedpath.privacy.dp.accountant import epsilon


@pytest.mark.slow
def test_simulate_with_session_dp_reports_epsilon_and_charges_each_partners_ledger(
    tmp_path: Path,
) -> None:
    # Prepare / Execute: Markov counts, 2 partners, SecAgg+ on, two rounds of σ = 2
    ledgers = tmp_path / "ledgers"
    run_cli(
        "simulate",
        "model=markov",
        "strategy=sum",
        "rounds=2",
        "data.n_sessions=200",
        "partners=2",
        "baselines=false",
        "funnel=off",
        "privacy=session",
        "privacy.session.noise_multiplier=2.0",
        f"privacy.session.ledger_dir={ledgers}",
        f"out={tmp_path / 'runs'}",
    )
    # Assert: the run's ε is two Gaussian releases at σ = 2, per round and at the end
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    privacy = json.loads((run_dir / "results.json").read_text())["privacy"]
    one, two = (epsilon(noise_multiplier=2.0, sample_rate=1.0, steps=k, delta=1e-5) for k in (1, 2))
    assert abs(privacy["session_epsilon"] - two) < 1e-9 and privacy["refusals"] == 0
    per_round = [max(r["session_epsilon"].values()) for r in privacy["rounds"]]
    assert [round(e, 9) for e in per_round] == [round(one, 9), round(two, 9)]
    assert all(len(r["session_epsilon"]) == 2 for r in privacy["rounds"])
    report = (run_dir / "report.md").read_text()
    assert "## Differential privacy" in report and f"session-level ε = {two:.3g}" in report
    # ... each partner's ledger, outside the run folder, holds the run's ε in two charges
    for partner in range(2):
        lines = (ledgers / f"partner-{partner:04d}.jsonl").read_text().splitlines()
        charged = [json.loads(line)["data"]["epsilon"] for line in lines]
        assert len(charged) == 2 and abs(sum(charged) - two) < 1e-9
    # ... and the audit trail records the spending and still verifies
    kinds = [
        json.loads(line)["kind"] for line in (run_dir / "audit.jsonl").read_text().splitlines()
    ]
    assert kinds[-1] == "privacy"
    assert "audit trail intact" in run_cli("audit", "verify", str(run_dir)).stdout
