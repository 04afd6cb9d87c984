"""A partner's log of no known format, read by naming its columns on the command line."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli

from fedpath.data.named_columns import named_mapping
from fedpath.errors import ConfigError

START = 1_700_000_000  # 2023-11-14 22:13:20 UTC, in unix seconds
NAMED = (
    "data=file",
    "data.columns.session=SessionId",
    "data.columns.item=ItemId",
    "data.columns.time=Time",
    "model=popularity",
)


def _events() -> list[tuple[str, str, int]]:
    """40 sessions of 4 views an hour apart over 7 items: (session, item, unix seconds)."""
    return [
        (f"s{s}", f"i{(s * 3 + k * 5) % 7}", START + s * 3600 + k * 60)
        for s in range(40)
        for k in range(4)
    ]


def _time(seconds: int, unit: str) -> str:
    if unit == "iso":
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return str(seconds * 1000 if unit == "ms" else seconds)


def _write_tsv(path: Path, unit: str) -> Path:
    lines = ["SessionId\tItemId\tTime"]
    lines += [f"{s}\t{i}\t{_time(t, unit)}" for s, i, t in _events()]
    data = "\n".join(lines).encode() + b"\n"
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _split(out: Path) -> dict[str, int]:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    assert "160 rows in = 160 loaded + 0 quarantined" in (run_dir / "report.md").read_text()
    return json.loads((run_dir / "metrics.json").read_text())["split"]


@pytest.mark.parametrize(
    ("unit", "name"), [("s", "s.tsv"), ("ms", "ms.tsv.gz"), ("iso", "iso.tsv")]
)
def test_a_session_rec_tsv_trains_through_the_cli(tmp_path: Path, unit: str, name: str) -> None:
    # Prepare: the log with unix seconds, milliseconds (gzipped) or ISO 8601 times
    log = _write_tsv(tmp_path / name, unit)

    # Execute
    run_cli("train", *NAMED, f"data.path={log}", f"out={tmp_path / 'runs'}")

    # Assert: every row read (none too early or unparsable); sessions split by start time
    split = _split(tmp_path / "runs")
    assert [split[f"{s}_sessions"] for s in ("train", "valid", "test")] == [28, 4, 8]
    assert split["test_item_cases"] == 8 * 3


def test_a_parquet_log_with_actions_trains_through_the_cli(tmp_path: Path) -> None:
    # Prepare: the same events with an action column, in Parquet (times as int64 seconds)
    events = _events()
    kinds = ["click", "click", "basket", "order"]
    table = pa.table(
        {
            "SessionId": [s for s, _, _ in events],
            "ItemId": [i for _, i, _ in events],
            "Time": pa.array([t for _, _, t in events], pa.int64()),
            "Type": [kinds[k % 4] for k in range(len(events))],
        }
    )
    log = tmp_path / "export.parquet"
    pq.write_table(table, log)

    # Execute
    run_cli(
        "train",
        *NAMED,
        f"data.path={log}",
        "data.columns.action=Type",
        "data.actions={click:view,basket:cart,order:purchase}",
        f"out={tmp_path / 'runs'}",
    )

    # Assert: every row read, and the funnel counts the 40 sessions that each hold one order
    assert _split(tmp_path / "runs")["test_sessions"] == 8
    report = next((tmp_path / "runs").glob("*/report.md")).read_text()
    assert "| all | purchase | 40 |" in report


def test_a_wrong_column_name_is_one_line_naming_it_and_the_header(tmp_path: Path) -> None:
    log = _write_tsv(tmp_path / "sessions.tsv", "ms")
    exe = Path(sys.executable).with_name("fedpath")
    args = [arg.replace("ItemId", "ItemID") for arg in NAMED]

    proc = subprocess.run(
        [str(exe), "train", *args, f"data.path={log}", f"out={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("fedpath: error: data.columns.item=ItemID is not a column of ")
    assert "'SessionId\\tItemId\\tTime'" in line


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [
        ("a,SessionId,ItemId,Time", ","),
        ("SessionId;ItemId;Time", ";"),
        ("SessionId|ItemId|Time", "|"),
    ],
)
def test_the_delimiter_is_the_one_that_holds_every_named_column(
    tmp_path: Path, header: str, delimiter: str
) -> None:
    log = tmp_path / "log.txt"
    log.write_text(header + "\n")

    mapping = named_mapping(log, {"session": "SessionId", "item": "ItemId", "time": "Time"})

    assert mapping.delimiter == delimiter


def test_an_action_column_without_its_values_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("SessionId,ItemId,Time,Type\n")
    columns = {"session": "SessionId", "item": "ItemId", "time": "Time", "action": "Type"}

    with pytest.raises(ConfigError, match=r"data\.actions must map each value"):
        named_mapping(log, columns)
