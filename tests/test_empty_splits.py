"""A split left empty is said, with why, in the log and the run report, not just shown as n/a."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import run_cli  # pytest puts tests/ on sys.path

from fedpath.data.protocol import ProtocolConfig, apply_protocol
from fedpath.schema import conform

START_MS = 1_600_000_000_000


def one_session(n_events: int) -> pd.DataFrame:
    """One long visit cycling through 50 items, a second between clicks."""
    return conform(
        pd.DataFrame(
            {
                "session_id": ["only"] * n_events,
                "item_id": [f"i{k % 50}" for k in range(n_events)],
                "timestamp": START_MS + np.arange(n_events, dtype=np.int64) * 1000,
                "action": 0,
            }
        )
    )


def events_of(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["session_id", "item_id", "timestamp"])
    return conform(frame.assign(action=0))


def test_one_huge_session_leaves_valid_and_test_empty_and_says_why() -> None:
    # Execute
    split = apply_protocol(one_session(2000), ProtocolConfig())

    # Assert: 1 session x 0.2 rounds to no test session; the warning names the cause
    assert (len(split.train), len(split.valid), len(split.test)) == (1, 0, 0)
    assert [w.split(":")[0] for w in split.warnings] == [
        "the valid split is empty, so its metrics are n/a",
        "the test split is empty, so its metrics are n/a",
    ]
    assert "1 session(s) passed the filters and test_fraction=0.2" in split.warnings[1]


def test_a_split_meant_to_be_empty_or_filled_gives_no_warning() -> None:
    # Prepare: ten sessions of the same two items, one second apart
    rows = [
        (f"s{k}", item, START_MS + 10 * k + j) for k in range(10) for j, item in enumerate("ab")
    ]
    events = events_of(rows)

    # Execute
    split = apply_protocol(events, ProtocolConfig(valid_fraction=0))

    # Assert
    assert (len(split.valid), len(split.test), split.warnings) == (0, 2, ())


def test_a_held_out_split_emptied_by_unseen_items_says_so() -> None:
    # Prepare: four train sessions on a/b, then a test session on items train never saw
    rows = [(f"s{k}", item, START_MS + 10 * k + j) for k in range(4) for j, item in enumerate("ab")]
    rows += [("s9", item, START_MS + 100 + j) for j, item in enumerate("xyxy")]
    events = events_of(rows)

    # Execute
    split = apply_protocol(events, ProtocolConfig(valid_fraction=0))

    # Assert
    assert split.warnings == (
        "the test split is empty, so its metrics are n/a: its 1 session(s) fell below "
        "min_session_length=2 once items unseen in train were dropped",
    )


def test_train_on_one_huge_session_warns_on_stderr_and_in_the_run_report(tmp_path: Path) -> None:
    # Prepare
    log = tmp_path / "one-visit.csv"
    one_session(2000).to_csv(log, index=False)

    # Execute
    proc = run_cli(
        "train", "model=markov", "data=file", f"data.path={log}", f"hydra.run.dir={tmp_path}/run"
    )

    # Assert
    assert "the test split is empty" in proc.stdout + proc.stderr
    report = (tmp_path / "run" / "report.md").read_text()
    assert "2000 rows in = 2000 loaded + 0 quarantined" in report
    assert "**Warning:** the test split is empty, so its metrics are n/a" in report
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["data_warnings"]) == 2
