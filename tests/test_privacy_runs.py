"""Whole runs through the installed CLI: no raw id in any artifact, and a verifiable audit trail."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from privacy_data import write_rees46_log  # pytest puts tests/ on sys.path

from fedpath.privacy.audit import verify_audit
from fedpath.privacy.scan import scan_for_raw_ids

KEY = b"partner-a-pseudonym-key-000000001"


@pytest.fixture
def partner_log(tmp_path: Path) -> tuple[list[str], list[str]]:
    """The REES46-format log with distinctive raw ids, and the partner's key file beside it."""
    (tmp_path / "partner.key").write_bytes(KEY)
    return write_rees46_log(tmp_path / "shop-a.csv")


def data_args(folder: Path, *, pseudonymize: bool) -> list[str]:
    return [
        "data=file",
        f"data.path={folder / 'shop-a.csv'}",
        "data.format=rees46",
        f"data.pseudonymize={str(pseudonymize).lower()}",
        f"data.pseudonym_key_path={folder / 'partner.key'}",
    ]


def only_run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


@pytest.mark.slow  # two whole train runs; the simulate test below scans a whole run by default
def test_a_pseudonymized_train_run_holds_no_raw_id_and_the_scan_would_see_one(
    tmp_path, partner_log
) -> None:
    # Prepare
    raw_ids = [*partner_log[0], *partner_log[1]]

    # Execute: the same run with pseudonymization on, then off as the scan's control
    for flag in (True, False):
        args = data_args(tmp_path, pseudonymize=flag)
        run_cli("train", "model=markov", *args, f"out={tmp_path / f'runs-{flag}'}")

    # Assert: nothing leaks with it on; with it off the quarantined raw row is found, so the
    # scan does see a leak where there is one
    clean = only_run_dir(tmp_path / "runs-True")
    assert (clean / "metrics.json").is_file() and (clean / "model.safetensors").is_file()
    assert scan_for_raw_ids(clean, raw_ids) == []
    leaky = scan_for_raw_ids(only_run_dir(tmp_path / "runs-False"), raw_ids)
    assert {f.path.name for f in leaky} == {"quarantine.jsonl"}


def test_a_pseudonymized_simulation_is_clean_and_its_audit_trail_verifies(
    tmp_path, partner_log
) -> None:
    # Prepare: three partners, one per product category
    raw_ids = [*partner_log[0], *partner_log[1]]
    args = [*data_args(tmp_path, pseudonymize=True), "partition=natural", "partition.by=category"]

    # Execute
    proc = run_cli(
        "simulate", "model=markov", "strategy=sum", "rounds=2", *args, f"out={tmp_path / 'runs'}"
    )
    run_dir = only_run_dir(tmp_path / "runs")
    verified = run_cli("audit", "verify", str(run_dir))

    # Assert: no raw id anywhere in the run folder, logs and Hydra's files included
    assert "audit trail" in proc.stdout
    assert scan_for_raw_ids(run_dir, raw_ids) == []
    # Assert: the trail holds config, code version, each partner's digest, who took part in each
    # round, and the hash of the model file as it is on disk
    entries = verify_audit(run_dir / "audit.jsonl")
    kinds = [e.kind for e in entries]
    assert kinds == ["run", *["partner_data"] * 3, "round", "round", "model"]
    run = entries[0].payload
    assert run["config"]["rounds"] == 2 and run["pseudonymized"] is True
    assert run["code_version"].startswith("fedpath ")
    partners = [e.payload["partner"] for e in entries if e.kind == "partner_data"]
    results = json.loads((run_dir / "results.json").read_text())
    assert sorted(partners) == sorted(p["name"] for p in results["per_partner"])
    assert all(len(e.payload["digest"]) == 64 for e in entries if e.kind == "partner_data")
    for entry in entries[4:6]:
        assert sorted(entry.payload["participants"]) == sorted(partners)
        assert entry.payload["dropped_partners"] == []
    model_hash = hashlib.sha256((run_dir / "model.safetensors").read_bytes()).hexdigest()
    assert entries[-1].payload["sha256"] == model_hash
    assert f"head: {entries[-1].hash}" in verified.stdout

    # Execute / Assert: an edited round is caught by the command, which exits non-zero
    lines = (run_dir / "audit.jsonl").read_text().splitlines(keepends=True)
    lines[5] = lines[5].replace('"dropped_partners":[]', '"dropped_partners":["x"]')
    (run_dir / "audit.jsonl").write_text("".join(lines))
    exe = Path(sys.executable).with_name("fedpath")
    broken = subprocess.run(
        [str(exe), "audit", "verify", str(run_dir)], capture_output=True, text=True, timeout=120
    )
    assert broken.returncode == 1
    assert "entry 5 (line 6): hash must match" in broken.stderr
