"""`fedpath train` end to end, through the installed console command, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli


def _only_run_folder(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def test_train_markov_on_real_rees46_reproduces_the_note(shared_data: Path, tmp_path: Path) -> None:
    # Prepare / Execute
    run_cli("train", "model=markov", "data=rees46", f"out={tmp_path}")

    # Assert: the run folder holds every artifact, and the test figure is the note's (0.533)
    run_dir = _only_run_folder(tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["recall@20"] == pytest.approx(0.533, abs=5e-4)
    assert metrics["split"]["test_item_cases"] == 92
    assert metrics["synthetic"] is False
    for name in ("config.yaml", "metrics.csv", "model.safetensors", "learning_curves.png"):
        assert (run_dir / name).stat().st_size > 0, name
    report = (run_dir / "report.md").read_text()
    assert "SYNTHETIC" not in report
    assert "| test | 0.478 | 0.533 |" in report  # R@10, R@20 of the note's Markov row
    assert "| all | purchase | 50 |" in report  # the README's 50 converting sessions


def test_train_gru4rec_on_the_embedded_default_is_labelled_synthetic(tmp_path: Path) -> None:
    run_cli(
        "train",
        "model=gru4rec",
        "model.epochs=2",
        "data.n_sessions=400",
        f"out={tmp_path}",
    )

    run_dir = _only_run_folder(tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["synthetic"] is True
    assert [row["epoch"] for row in metrics["epochs"]] == [1, 2]
    assert (run_dir / "report.md").read_text().startswith("# fedpath train: gru4rec on synthetic")
    assert "SYNTHETIC" in (run_dir / "report.md").read_text()
    meta = json.loads((run_dir / "synthetic-events.csv.meta.json").read_text())
    assert meta["synthetic"] is True


def test_train_quarantines_malformed_rows_and_reports_them(tmp_path: Path) -> None:
    # Prepare: a REES46-format log with one bad timestamp and one unknown action among good rows
    good = "2019-10-01 00:00:{s:02d} UTC,view,{item},1,electronics.phone,b,1.0,7,sess{n}"
    lines = [
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
    ]
    for n in range(12):
        for step, item in enumerate((1, 2, 3)):
            lines.append(good.format(s=step, item=item + n % 2, n=n))
    lines.insert(5, "not-a-time,view,1,1,electronics.phone,b,1.0,7,sessX")
    lines.insert(9, "2019-10-01 00:00:09 UTC,teleport,1,1,electronics.phone,b,1.0,7,sessY")
    log = tmp_path / "events.csv"
    log.write_text("\n".join(lines) + "\n")

    run_cli("train", "model=markov", "data=file", f"data.path={log}", f"out={tmp_path / 'runs'}")

    run_dir = _only_run_folder(tmp_path / "runs")
    rows = [json.loads(line) for line in (run_dir / "quarantine.jsonl").read_text().splitlines()]
    # list index 5 and 9 are file lines 6 and 10 (the header is line 1)
    assert [(r["line"], r["field"]) for r in rows] == [(6, "event_time"), (10, "event_type")]
    assert rows[1]["reason"] == "unknown action" and "teleport" in rows[1]["raw"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["quarantined_rows"] == 2
    assert "2 quarantined" in (run_dir / "report.md").read_text()


def test_cli_lists_commands_and_refuses_unknown_ones() -> None:
    exe = Path(sys.executable).with_name("fedpath")

    listing = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    unknown = subprocess.run([exe, "tarin"], capture_output=True, text=True, check=False)
    train_help = subprocess.run(
        [exe, "train", "--help"], capture_output=True, text=True, check=False
    )

    assert listing.returncode == 0 and "train" in listing.stdout and "synth" in listing.stdout
    assert unknown.returncode == 2 and "unknown command 'tarin'" in unknown.stderr
    assert train_help.returncode == 0 and "model: " in train_help.stdout
