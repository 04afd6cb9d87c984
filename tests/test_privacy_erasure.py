"""Right to erasure: a user's events leave the partner's store, and the ledger says so."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fedpath.data.loader import load_events
from fedpath.errors import DataFormatError
from fedpath.privacy.dp.ledger import ERASURE, PrivacyLedger
from fedpath.privacy.erasure import forget_user
from fedpath.privacy.pseudonymize import pseudonym, pseudonymize
from fedpath.schema import conform

KEY = b"partner-a-pseudonym-key-000000001"
ALICE = pseudonym("alice-4711", KEY, "user_id")

# alice has two sessions; in s1 she browsed anonymously before logging in; bob and carol stay.
ROWS = [
    ("s1", None, 1_600_000_001_000, "i1", 0, 9.5),
    ("s1", "alice-4711", 1_600_000_002_000, "i2", 1, 12.25),
    ("s2", "bob-0815", 1_600_000_002_500, "i1", 0, None),
    ("s3", "alice-4711", 1_600_000_003_000, "i3", 0, 7.0),
    ("s3", "alice-4711", 1_600_000_004_000, "i4", 2, 7.0),
    ("s2", "bob-0815", 1_600_000_005_000, "i3", 2, 3.1),
    ("s4", "carol-1", 1_600_000_006_000, "i2", 0, 0.1),
]


def store_events() -> pd.DataFrame:
    frame = pd.DataFrame(
        ROWS, columns=["session_id", "user_id", "timestamp", "item_id", "action", "price"]
    )
    return conform(frame.assign(channel="app", category="shoes"))


def write_store(path: Path, events: pd.DataFrame) -> Path:
    if path.suffix == ".parquet":
        events.to_parquet(path, index=False)
    else:
        events.to_csv(path, index=False)
    return path


def read_store(path: Path) -> pd.DataFrame:
    return load_events(path, fmt="fedpath").events


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_forget_removes_the_users_events_and_sessions_only(tmp_path, suffix: str) -> None:
    # Prepare
    store = write_store(tmp_path / f"events{suffix}", store_events())
    ledger = tmp_path / "ledger.jsonl"

    # Execute
    erasure = forget_user(store, "alice-4711", ledger=ledger, key=KEY)

    # Assert: bob's and carol's rows are exactly what they were; alice's sessions are gone,
    # including the anonymous event of s1
    kept = read_store(store)
    expected = read_store(
        write_store(tmp_path / f"expected{suffix}", store_events().iloc[[2, 5, 6]])
    )
    pd.testing.assert_frame_equal(kept, expected)
    assert (erasure.events_removed, erasure.sessions_removed, erasure.events_kept) == (4, 2, 3)
    assert erasure.user == ALICE


def test_the_ledger_records_the_erasure_under_the_pseudonym_only(tmp_path) -> None:
    # Prepare: a ledger that already holds a privacy charge
    store = write_store(tmp_path / "events.csv", store_events())
    ledger = PrivacyLedger(tmp_path / "ledger.jsonl", budget_epsilon=8.0, delta=1e-5)
    ledger.charge("run-1", 2.0, 1e-6)

    # Execute
    forget_user(store, "alice-4711", ledger=ledger.log.path, key=KEY)

    # Assert
    (entry,) = ledger.erasures()
    assert entry.kind == ERASURE and entry.seq == 1
    assert entry.data["user"] == ALICE
    assert entry.data["events_removed"] == 4 and entry.data["sessions_removed"] == 2
    assert entry.data["store_sha256"] == hashlib.sha256(store.read_bytes()).hexdigest()
    assert "alice-4711" not in ledger.log.path.read_text()
    assert ledger.spent() == 2.0


def test_a_pseudonymized_store_is_erased_by_the_raw_id(tmp_path) -> None:
    # Prepare
    store = write_store(tmp_path / "events.csv", pseudonymize(store_events(), KEY))

    # Execute
    erasure = forget_user(store, "alice-4711", ledger=tmp_path / "ledger.jsonl", key=KEY)

    # Assert
    assert erasure.events_removed == 4
    assert ALICE not in set(read_store(store)["user_id"])


def test_an_unknown_user_changes_nothing_but_is_recorded(tmp_path) -> None:
    # Prepare
    store = write_store(tmp_path / "events.csv", store_events())
    before = store.read_bytes()

    # Execute
    erasure = forget_user(store, "nobody", ledger=tmp_path / "ledger.jsonl", key=KEY)

    # Assert
    assert store.read_bytes() == before
    assert erasure.events_removed == 0 and erasure.entry.seq == 0


def test_a_store_with_malformed_rows_is_refused_untouched(tmp_path) -> None:
    # Prepare: row 3 (line 4) has no timestamp
    store = write_store(tmp_path / "events.csv", store_events())
    lines = store.read_text().splitlines()
    lines[3] = lines[3].replace(",1600000002500,", ",,")
    store.write_text("\n".join(lines) + "\n")
    before = store.read_bytes()
    ledger = tmp_path / "ledger.jsonl"

    # Execute / Assert
    with pytest.raises(DataFormatError, match=r"events\.csv: line 4, field timestamp"):
        forget_user(store, "alice-4711", ledger=ledger, key=KEY)
    assert store.read_bytes() == before
    assert not ledger.exists()


def test_cli_forget_erases_and_reports_the_pseudonym(tmp_path) -> None:
    # Prepare
    store = write_store(tmp_path / "events.csv", store_events())
    key_file = tmp_path / "partner.key"
    key_file.write_bytes(KEY)
    ledger = tmp_path / "ledger.jsonl"
    exe = Path(sys.executable).with_name("fedpath")

    # Execute
    args = ["partner", "forget", "alice-4711", "--store", str(store), "--ledger", str(ledger)]
    proc = subprocess.run(
        [str(exe), *args, "--key", str(key_file)], capture_output=True, text=True, timeout=120
    )

    # Assert
    assert proc.returncode == 0, proc.stderr
    assert f"erased user {ALICE}: 4 events in 2 sessions removed" in proc.stdout
    assert len(read_store(store)) == 3
    assert len(PrivacyLedger(ledger, budget_epsilon=1.0, delta=0.0).erasures()) == 1
