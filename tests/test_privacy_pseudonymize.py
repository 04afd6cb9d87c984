"""Pseudonymization at the door, the raw-id scan, and the pipeline that wires them together."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pandas as pd
import pytest
from privacy_data import write_rees46_log  # pytest puts tests/ on sys.path

from fedpath.data.protocol import ProtocolConfig
from fedpath.data.sessionize import sessionize
from fedpath.privacy.keys import PSEUDONYM_KEY_ENV
from fedpath.privacy.pseudonymize import pseudonym, pseudonymize
from fedpath.privacy.scan import opaque_files, scan_for_raw_ids
from fedpath.schema import conform
from fedpath.simulations.pipeline import DataSource, prepare

KEY = b"partner-a-pseudonym-key-000000001"
OTHER_KEY = b"partner-b-pseudonym-key-000000002"


@pytest.fixture
def rees46_raw_ids(tmp_path: Path) -> tuple[Path, list[str], list[str]]:
    path = tmp_path / "shop-a.csv"
    return (path, *write_rees46_log(path))


def events(rows: list[tuple[str | None, str | None, int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "session_id", "timestamp", "item_id"])
    return conform(frame.assign(action=0))


def test_a_pseudonym_is_the_keyed_hmac_of_column_and_id() -> None:
    # Prepare: the documented construction, computed with the standard library alone
    mac = hmac.new(KEY, b"user_id\x1fcustomer-4711", hashlib.sha256).hexdigest()

    # Execute / Assert: 128 bits of it, behind a prefix that says which column it came from
    assert pseudonym("customer-4711", KEY, "user_id") == "u-" + mac[:32]


def test_pseudonyms_are_stable_per_key_and_differ_across_keys_and_columns() -> None:
    # Execute
    same = pseudonym("4711", KEY, "user_id"), pseudonym("4711", KEY, "user_id")
    other_key = pseudonym("4711", OTHER_KEY, "user_id")
    as_session = pseudonym("4711", KEY, "session_id")

    # Assert
    assert same[0] == same[1]
    assert other_key != same[0]
    assert as_session.removeprefix("s-") != same[0].removeprefix("u-")


def test_pseudonymize_replaces_ids_keeps_gaps_and_leaves_the_input_alone() -> None:
    # Prepare
    raw = events([("alice", "s1", 1, "i1"), (None, "s2", 2, "i2"), ("alice", None, 3, "i3")])
    before = raw.copy()

    # Execute
    out = pseudonymize(raw, KEY)

    # Assert
    alice = pseudonym("alice", KEY, "user_id")
    assert out["user_id"].tolist() == [alice, None, alice]
    assert out["session_id"].tolist() == [
        pseudonym("s1", KEY, "session_id"),
        pseudonym("s2", KEY, "session_id"),
        None,
    ]
    assert out["item_id"].tolist() == ["i1", "i2", "i3"]
    pd.testing.assert_frame_equal(raw, before)


def test_sessions_cut_after_pseudonymization_carry_no_raw_user_id() -> None:
    # Prepare: a log without session ids, sessionized per user by the inactivity gap
    raw = events([("alice", None, 0, "i1"), ("alice", None, 60_000, "i2")])

    # Execute
    sessions = sessionize(pseudonymize(raw, KEY), gap_minutes=30)

    # Assert
    assert sessions["session_id"].tolist() == [pseudonym("alice", KEY, "user_id") + ":0"] * 2


def test_a_short_key_is_refused() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="at least 16 bytes, got 5"):
        pseudonymize(events([("alice", "s1", 1, "i1")]), b"short")


def test_scan_finds_raw_ids_in_any_file_with_their_line(tmp_path) -> None:
    # Prepare: a plain log line, a JSON file escaping a non-ASCII id, a hidden folder
    (tmp_path / "run.log").write_text("start\nuser RAW-ALICE-77 trained\n")
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.json").write_text(json.dumps({"user": "RAW-ZOË-12"}))
    (tmp_path / "clean.csv").write_text("round,loss\n1,0.5\n")

    # Execute
    findings = scan_for_raw_ids(tmp_path, ["RAW-ALICE-77", "RAW-ZOË-12", "RAW-NOBODY"])

    # Assert
    found = {(f.path.name, f.raw_id, f.line) for f in findings}
    assert found == {("run.log", "RAW-ALICE-77", 2), ("overrides.json", "RAW-ZOË-12", 1)}


def test_scan_lists_files_it_cannot_see_into(tmp_path) -> None:
    # Prepare
    (tmp_path / "curves.png").write_bytes(b"\x89PNG compressed")
    (tmp_path / "report.md").write_text("# report\n")

    # Execute / Assert
    assert [p.name for p in opaque_files(tmp_path)] == ["curves.png"]


def test_scan_refuses_an_empty_id(tmp_path) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="non-empty strings"):
        scan_for_raw_ids(tmp_path, ["RAW-1", ""])


def test_prepare_pseudonymizes_before_anything_else_sees_the_log(
    tmp_path, monkeypatch, rees46_raw_ids
) -> None:
    # Prepare: the key from the environment, as hex
    log_path, raw_users, raw_sessions = rees46_raw_ids
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, KEY.hex())
    source = DataSource(name="file", path=log_path, format="rees46", pseudonymize=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    # Execute
    data = prepare(source, ProtocolConfig(), run_dir)

    # Assert: loaded table and session keys hold pseudonyms only (the last ids are those of the
    # malformed row); the quarantined raw row stays out of the run folder
    loaded = data.log.events
    assert set(loaded["user_id"]) == {pseudonym(u, KEY, "user_id") for u in raw_users[:-1]}
    assert set(loaded["session_id"]) == {pseudonym(s, KEY, "session_id") for s in raw_sessions[:-1]}
    keys = {s.key for part in (data.split.train, data.split.valid, data.split.test) for s in part}
    assert keys and keys <= set(loaded["session_id"])
    assert data.log.n_quarantined == 1
    assert list(run_dir.iterdir()) == []
    data.log.quarantine_path.unlink()  # the raw row went to a private temporary file


def test_prepare_without_a_key_is_refused(tmp_path, monkeypatch, rees46_raw_ids) -> None:
    # Prepare
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    source = DataSource(name="file", path=rees46_raw_ids[0], format="rees46", pseudonymize=True)

    # Execute / Assert
    with pytest.raises(Exception, match=r"FEDPATH_PSEUDONYM_KEY, got neither"):
        prepare(source, ProtocolConfig(), tmp_path / "run")
