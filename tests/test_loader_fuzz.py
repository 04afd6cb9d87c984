"""Garbage thrown at every loader: only DataFormatError escapes, and no line is ever lost."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedpath.data.convert import MAX_MS, MIN_MS
from fedpath.data.detect import detect_format
from fedpath.data.formats import FORMATS, ColumnMapping
from fedpath.data.loader import LoadedLog, load_events
from fedpath.data.quarantine import read_quarantine
from fedpath.data.records import MAX_RECORD_LINES
from fedpath.errors import DataFormatError
from fedpath.schema import Action

FIXTURES = Path(__file__).resolve().parent / "data" / "loaders"
FIXTURE_OF = {
    "diginetica": "train-item-views.csv",
    "yoochoose": "yoochoose-clicks.dat",
    "yoochoose-buys": "yoochoose-buys.dat",
    "retailrocket": "events.csv",
    "rees46": "rees46-tiny.csv",
    "taobao": "UserBehavior.csv",
    "fedpath": "synthetic-events.csv",
    "presplit": "presplit.csv",
}
# Values that get past the field count and reach the value checks of some format.
TOKENS = [
    "",
    "NA",
    "0",
    "-1",
    "view",
    "cart",
    "purchase",
    "remove_from_cart",
    "pv",
    "fav",
    "buy",
    "transaction",
    "2019-10-01 00:00:00 UTC",
    "2019-02-30 00:00:00 UTC",
    "2016-05-09",
    "2014-04-07T10:51:09.277Z",
    "1511544070",
    "1433221332117",
    "99999999999999999999",
    "1e400",
    "nan",
    "12.5",
    "\u0663",  # a digit, but not an ASCII one
    "electronics.audio",
    "train",
    "test",
    ".",
]
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PLAIN_TEXT = st.characters(exclude_characters='\n\r"\ufeff', exclude_categories=("Cs",))


def header_and_rows(fmt: str) -> tuple[list[str], list[str]]:
    """The fixture's header (empty for headerless formats) and its data lines."""
    lines = (FIXTURES / FIXTURE_OF[fmt]).read_text(encoding="utf-8").splitlines()
    return (lines[:1], lines[1:]) if FORMATS[fmt].has_header else ([], lines)


def fields(fmt: str) -> st.SearchStrategy[str]:
    delimiter = FORMATS[fmt].mapping.delimiter
    n_fields = len(FORMATS[fmt].columns)
    text = st.text(st.characters(codec="utf-8").filter(lambda c: c not in f'\n\r"{delimiter}'))
    value = st.sampled_from(TOKENS) | text.filter(lambda s: "\ufeff" not in s)
    return st.lists(value, min_size=n_fields, max_size=n_fields).map(delimiter.join)


def lines_of(fmt: str) -> st.SearchStrategy[list[str]]:
    """Lines without quotes or line breaks: each is exactly one record."""
    _, valid = header_and_rows(fmt)
    line = st.text(PLAIN_TEXT, max_size=40) | fields(fmt) | st.sampled_from(valid)
    return st.lists(line, max_size=20)


def load_in(folder: str, fmt: str, data: bytes, chunk_rows: int) -> LoadedLog:
    path = Path(folder) / FIXTURE_OF[fmt]
    path.write_bytes(data)
    return load_events(
        path, fmt=fmt, chunk_rows=chunk_rows, quarantine_path=Path(folder) / "q.jsonl"
    )


def assert_canonical(log: LoadedLog) -> None:
    events = log.events
    earliest = 0 if log.clockless else MIN_MS  # a clockless log's times are positions
    assert events["timestamp"].between(earliest, MAX_MS - 1).all()
    assert set(events["action"]) <= {int(Action.VIEW), int(Action.CART), int(Action.PURCHASE)}
    assert all(isinstance(item, str) and item for item in events["item_id"])


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@SETTINGS
@given(data=st.data(), chunk_rows=st.integers(1, 6))
def test_every_line_ends_in_the_output_or_in_quarantine_with_its_text(fmt, data, chunk_rows):
    # Prepare
    header, valid = header_and_rows(fmt)
    lines = data.draw(lines_of(fmt))
    with tempfile.TemporaryDirectory() as folder:
        # Execute
        log = load_in(folder, fmt, "".join(f"{x}\n" for x in header + lines).encode(), chunk_rows)
        rejected = read_quarantine(log.quarantine_path) if log.quarantine_path else None
    # Assert
    assert len(log.events) + log.n_quarantined == len(lines)
    first = len(header) + 1
    if rejected is not None:
        assert rejected["line"].is_unique
        for line, raw in zip(rejected["line"], rejected["raw"], strict=True):
            assert raw == lines[line - first]
            assert lines[line - first] not in valid  # a good row is never rejected
    assert_canonical(log)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@SETTINGS
@given(chunks=st.lists(st.binary(max_size=60), max_size=15), chunk_rows=st.integers(1, 6))
def test_arbitrary_bytes_after_a_good_header_never_escape_as_exceptions(fmt, chunks, chunk_rows):
    header, _ = header_and_rows(fmt)
    data = "".join(f"{x}\n" for x in header).encode() + b"\n".join(chunks)
    body = data[len("".join(f"{x}\n" for x in header).encode()) :]
    physical_lines = body.count(b"\n") + (not body.endswith(b"\n") and len(body) > 0)

    with tempfile.TemporaryDirectory() as folder:
        try:
            log = load_in(folder, fmt, data, chunk_rows)
        except DataFormatError as error:
            framed_as_parquet = data.startswith(b"PAR1") and data.endswith(b"PAR1")
            # a headerless log whose bytes open with gzip's magic is read as a (damaged) gzip file
            damaged_gzip = data.startswith(b"\x1f\x8b") and "cannot read it as gzip" in str(error)
            assert framed_as_parquet or damaged_gzip, error
            return
        rejected = read_quarantine(log.quarantine_path) if log.quarantine_path else None

    assert len(log.events) + log.n_quarantined <= physical_lines
    if rejected is not None:
        assert rejected["line"].is_unique
        assert rejected["line"].between(len(header) + 1, len(header) + physical_lines).all()
    assert_canonical(log)


@pytest.mark.parametrize("fmt", sorted(f for f in FORMATS if FORMATS[f].has_header))
@SETTINGS
@given(header=st.text(max_size=80))
def test_a_garbage_header_either_loads_or_is_a_data_format_error(fmt, header):
    _, rows = header_and_rows(fmt)
    data = (header + "\n" + "\n".join(rows) + "\n").encode("utf-8", errors="surrogatepass")

    with tempfile.TemporaryDirectory() as folder:
        try:
            log = load_in(folder, fmt, data, chunk_rows=2)
        except DataFormatError as error:
            assert FIXTURE_OF[fmt] in str(error)
        else:
            assert_canonical(log)


@SETTINGS
@given(
    data=st.binary(max_size=200),
    name=st.sampled_from(["x.csv", "UserBehavior.csv", "yoochoose-clicks.dat", "a.parquet"]),
)
def test_detection_of_arbitrary_bytes_names_a_format_or_says_why_not(data, name):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            found = detect_format(path)
        except DataFormatError as error:
            assert str(path) in str(error)
        else:
            assert found in FORMATS


ROUND_TRIP = ColumnMapping(
    columns={"user_id": "user", "item_id": "item", "timestamp": "ts", "category": "note"},
    delimiter=";",
)
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)


@SETTINGS
@given(
    rows=st.lists(
        st.tuples(ANY_TEXT, ANY_TEXT, st.integers(MIN_MS, MAX_MS - 1), ANY_TEXT).filter(
            lambda row: sum(str(v).count("\n") for v in row) < MAX_RECORD_LINES  # line limit
        ),
        max_size=12,
    ),
    chunk_rows=st.integers(1, 5),
)
def test_well_formed_quoted_csv_round_trips_exactly(rows, chunk_rows):
    # Prepare: quotes, delimiters, CR and LF inside fields, as Python's csv writer quotes them.
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(["user", "item", "ts", "note"])
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.csv"
        path.write_bytes(buffer.getvalue().encode("utf-8"))
        # Execute
        log = load_events(path, mapping=ROUND_TRIP, chunk_rows=chunk_rows)
    # Assert
    assert log.n_quarantined == 0
    got = log.events[["user_id", "item_id", "timestamp", "category"]]
    assert [tuple(r) for r in got.itertuples(index=False)] == [
        (user, item, ts, note) for user, item, ts, note in rows
    ]
