"""A pre-split log's own split is the protocol: the full Diginetica benchmark split, read as is."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest

from fedpath.data.loader import load_events
from fedpath.data.protocol import ProtocolConfig, apply_protocol
from fedpath.errors import DataFormatError
from fedpath.simulations.pipeline import DataSource, prepare

FIXTURES = Path(__file__).resolve().parent / "data" / "loaders"


@pytest.fixture(scope="module")
def diginetica_full(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """The full split prepared once (about 6 s): the file's 983k views, streamed from gzip."""
    path = shared_data / "diginetica-full" / "sessions.csv.gz"
    source = DataSource("diginetica_full", path, complete_sessions=True)
    return prepare(source, ProtocolConfig(), tmp_path_factory.mktemp("run"))


def test_test_cases_are_exactly_the_files_60858(diginetica_full) -> None:
    data = diginetica_full

    assert len(data.test.item_cases) == 60_858  # the README's published count
    assert data.split.stats["test_sessions"] == 15_963
    assert data.log.n_quarantined == 0


def test_every_prefix_of_every_train_session_is_a_train_or_valid_case(diginetica_full) -> None:
    stats = diginetica_full.split.stats

    # 906,140 train views in 186,670 sessions: 719,470 prefixes that predict an item
    assert stats["train_sessions"] + stats["valid_sessions"] == 186_670
    assert stats["train_cases"] + stats["valid_cases"] == 906_140
    assert len(diginetica_full.train.item_cases) + len(diginetica_full.valid.item_cases) == 719_470
    # valid: the last 10% of the train sessions in the file (the highest ids), held out of train
    assert stats["valid_sessions"] == 18_667
    assert diginetica_full.split.valid[0].key == str(186_670 - 18_667 + 1)
    assert diginetica_full.split.train[-1].key == str(186_670 - 18_667)


def test_nothing_is_filtered_again(diginetica_full) -> None:
    data = diginetica_full

    assert data.split.n_items == 43_097
    assert sum(s.censored for s in data.split.test) == 0  # whole sessions, no clock to cut them


def test_valid_fraction_zero_trains_on_the_whole_train_split(tmp_path: Path) -> None:
    events = load_events(FIXTURES / "presplit.csv").events

    split = apply_protocol(events, ProtocolConfig(valid_fraction=0))

    assert [s.key for s in split.train] == ["1", "2"]
    assert [s.key for s in split.test] == ["3"]
    assert [s.items.tolist() for s in split.train] == [[0, 1], [2, 1, 0]]  # file order, no collapse
    assert split.valid == [] and split.warnings == ()


def test_a_log_without_a_clock_is_never_censored(tmp_path: Path) -> None:
    # Prepare: complete_sessions off, so only the positions-not-times rule can stop censoring
    source = DataSource("presplit", FIXTURES / "presplit.csv", complete_sessions=False)

    data = prepare(source, ProtocolConfig(valid_fraction=0), tmp_path)

    assert data.log.clockless
    assert [s.censored for s in data.split.train + data.split.test] == [False] * 3


def test_a_session_in_two_splits_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "split.csv"
    path.write_text("split,session_id,position,item_id\ntrain,7,0,1\ntest,7,1,2\ntrain,8,0,1\n")
    events = load_events(path).events

    with pytest.raises(DataFormatError, match="session '7' must lie in one split"):
        apply_protocol(events)


def test_an_unknown_split_value_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "split.csv"
    path.write_text("split,session_id,position,item_id\ntrain,1,0,1\nholdout,2,0,1\n")

    log = load_events(path, quarantine_path=tmp_path / "q.jsonl")

    assert (len(log.events), log.n_quarantined) == (1, 1)
    assert "unknown split" in (tmp_path / "q.jsonl").read_text()


@pytest.mark.parametrize("name", ["UserBehavior.csv.gz", "behaviour-export.gz"])
def test_gzip_reads_like_the_plain_file_for_another_format(tmp_path: Path, name: str) -> None:
    # Prepare: the headerless Taobao fixture, compressed (its name says taobao, or nothing at all)
    plain = load_events(FIXTURES / "UserBehavior.csv")
    packed = tmp_path / name
    with (FIXTURES / "UserBehavior.csv").open("rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)

    # Execute
    fmt = None if name.startswith("UserBehavior") else "taobao"
    log = load_events(packed, fmt=fmt, chunk_rows=2)

    # Assert: detected by name without its .gz, and the same events
    assert log.fmt == "taobao"
    pd.testing.assert_frame_equal(log.events, plain.events)


def test_a_cut_gzip_file_is_a_data_error_naming_it(tmp_path: Path) -> None:
    packed = tmp_path / "sessions.csv.gz"
    packed.write_bytes(gzip.compress((FIXTURES / "presplit.csv").read_bytes())[:-12])

    with pytest.raises(DataFormatError, match=r"sessions\.csv\.gz: cannot read it as gzip"):
        load_events(packed)
