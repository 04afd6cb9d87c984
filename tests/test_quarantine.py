"""Bad records go to the quarantine with their source line, field and reason; good ones survive."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedpath.data.formats import ColumnMapping
from fedpath.data.loader import load_events
from fedpath.data.quarantine import Quarantine, read_quarantine
from fedpath.data.records import MAX_RECORD_LINES
from fedpath.errors import DataFormatError
from fedpath.schema import EVENT_COLUMNS, Action

REES46_HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)


def rees46_row(
    *,
    time: str = "2019-10-01 00:00:00 UTC",
    kind: str = "view",
    product: str = "p",
    price: str = "1.00",
    user: str = "u",
    session: str = "s",
) -> str:
    category = "2053013552326770905,electronics.audio"
    return f"{time},{kind},{product},{category},acme,{price},{user},{session}"


# Line by line (the header is line 1), with what the quarantine must say of each bad one.
BAD_REES46 = [
    (rees46_row(product="good-1"), None),
    (rees46_row(time="2019-13-45 00:00:00 UTC"), ("event_time", "bad timestamp")),
    (rees46_row(time="1569888000"), ("event_time", "bad timestamp")),
    (rees46_row(product=""), ("product_id", "missing id")),
    (rees46_row(kind="click"), ("event_type", "unknown action")),
    (rees46_row(kind="remove_from_cart"), ("event_type", "unsupported action")),
    ("2019-10-01 00:00:00 UTC,view,p", (None, "wrong number of fields: expected 9, got 3")),
    (rees46_row(product="good-2") + ",extra", (None, "wrong number of fields: expected 9, got 10")),
    (rees46_row(price="12.5.1"), ("price", "unparsable price")),
    (rees46_row(price="-3"), ("price", "negative price")),
    ("", (None, "empty line")),
    (rees46_row(product="good-3", user="", session="s"), None),
    (rees46_row(user="", session=""), ("user_session", "missing id")),
    (rees46_row(product="good-4", price=""), None),
]


def write(path: Path, lines: list[str], *, newline: str = "\n") -> Path:
    path.write_bytes(newline.join(lines).encode("utf-8") + newline.encode())
    return path


def expected_rejects(rows: list, *, first_line: int) -> list[tuple]:
    return [
        (first_line + i, verdict[0], verdict[1], line)
        for i, (line, verdict) in enumerate(rows)
        if verdict is not None
    ]


def rejects(path: Path) -> list[tuple]:
    frame = read_quarantine(path).sort_values("line")
    fields = [None if pd.isna(f) else f for f in frame["field"]]
    return list(zip(frame["line"], fields, frame["reason"], frame["raw"], strict=True))


@pytest.mark.parametrize("chunk_rows", [1, 4, 500_000])
def test_each_kind_of_bad_rees46_row_is_quarantined_with_its_line(tmp_path, chunk_rows):
    # Prepare
    source = write(tmp_path / "oct.csv", [REES46_HEADER, *(line for line, _ in BAD_REES46)])
    # Execute
    log = load_events(source, chunk_rows=chunk_rows, quarantine_path=tmp_path / "q.jsonl")
    # Assert
    assert rejects(tmp_path / "q.jsonl") == expected_rejects(BAD_REES46, first_line=2)
    assert log.events["item_id"].tolist() == ["good-1", "good-3", "good-4"]
    assert log.events["session_id"].tolist() == ["s", "s", "s"]
    assert (log.n_rows, log.n_quarantined) == (len(BAD_REES46), len(BAD_REES46) - 3)
    assert log.quarantine_path == tmp_path / "q.jsonl"


def test_quarantine_entries_name_the_source_file(tmp_path):
    source = write(tmp_path / "oct.csv", [REES46_HEADER, rees46_row(kind="click")])

    load_events(source, quarantine_path=tmp_path / "q.jsonl")

    assert read_quarantine(tmp_path / "q.jsonl")["file"].tolist() == [str(source)]


def test_crlf_line_ends_are_not_content_and_keep_line_numbers(tmp_path):
    rows = [
        (rees46_row(product="a", session="s1"), None),
        (rees46_row(kind="zap"), ("event_type", "unknown action")),
        (rees46_row(product="b", session="s2"), None),
    ]
    source = write(tmp_path / "oct.csv", [REES46_HEADER, *(r for r, _ in rows)], newline="\r\n")

    log = load_events(source, chunk_rows=2, quarantine_path=tmp_path / "q.jsonl")

    assert log.events["session_id"].tolist() == ["s1", "s2"]  # no '\r' left on the last field
    assert rejects(tmp_path / "q.jsonl") == expected_rejects(rows, first_line=2)


def test_a_headerless_file_counts_its_first_record_as_line_one(tmp_path):
    rows = [
        ("1,2,3,pv,x", ("timestamp", "bad timestamp")),
        ("1,2,3,pv,1511544070", None),
        ("1,2,3,pv,99999999999999", ("timestamp", "bad timestamp")),  # year 3000+: not seconds
        ("1,,3,pv,1511544070", ("item_id", "missing id")),
    ]
    source = write(tmp_path / "UserBehavior.csv", [r for r, _ in rows])

    log = load_events(source, quarantine_path=tmp_path / "q.jsonl")

    assert rejects(tmp_path / "q.jsonl") == expected_rejects(rows, first_line=1)
    assert log.events["timestamp"].tolist() == [1511544070000]


def test_a_bad_diginetica_timeframe_names_its_field(tmp_path):
    rows = [
        ("1;NA;10;abc;2016-05-09", ("timeframe", "bad timestamp")),
        ("1;NA;11;5;2016-05-32", ("eventdate", "bad timestamp")),
        ("1;NA;12;5;2016-05-09", None),
        ("NA;NA;13;5;2016-05-09", ("session_id", "missing id")),
    ]
    header = "session_id;user_id;item_id;timeframe;eventdate"
    source = write(tmp_path / "train-item-views.csv", [header, *(r for r, _ in rows)])

    log = load_events(source, quarantine_path=tmp_path / "q.jsonl")

    assert rejects(tmp_path / "q.jsonl") == expected_rejects(rows, first_line=2)
    assert log.events["item_id"].tolist() == ["12"]


def test_times_before_1995_are_quarantined_naming_their_field(tmp_path):
    # Prepare: Unix time 0, a second before the bound, the bound itself (seconds, Taobao)
    rows = [
        ("1,2,3,pv,0", ("timestamp", "timestamp before 1995-01-01")),
        ("1,2,3,pv,788918399", ("timestamp", "timestamp before 1995-01-01")),
        ("1,2,3,pv,788918400", None),
        ("1,2,3,pv,1511544070", None),
    ]
    source = write(tmp_path / "UserBehavior.csv", [r for r, _ in rows])

    # Execute
    log = load_events(source, quarantine_path=tmp_path / "q.jsonl")

    # Assert
    assert rejects(tmp_path / "q.jsonl") == expected_rejects(rows, first_line=1)
    assert log.events["timestamp"].tolist() == [788918400000, 1511544070000]


def test_a_1970_date_is_too_early_even_with_a_diginetica_offset(tmp_path):
    header = "session_id;user_id;item_id;timeframe;eventdate"
    source = write(tmp_path / "train-item-views.csv", [header, "1;NA;10;5;1970-01-01"])

    load_events(source, quarantine_path=tmp_path / "q.jsonl")

    assert rejects(tmp_path / "q.jsonl") == [
        (2, "eventdate", "timestamp before 1995-01-01", "1;NA;10;5;1970-01-01")
    ]


QUOTED_MAPPING = ColumnMapping(
    columns={"user_id": "user", "item_id": "item", "timestamp": "ts", "category": "note"},
)


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 100])
def test_line_numbers_stay_exact_after_multiline_quoted_fields(tmp_path, chunk_rows):
    lines = [
        "user,item,ts,note",  # 1
        'u1,i1,1600000001000,"two',  # 2
        'lines"',  # 3
        "u2,i2,oops,plain",  # 4: bad timestamp
        'u3,"i3,with comma",1600000003000,"say ""hi"""',  # 5
        'u4,i4,1600000004000,"three',  # 6
        "",  # 7
        'lines"',  # 8
        "u5,,1600000005000,x",  # 9: missing item
    ]
    source = write(tmp_path / "export.csv", lines)

    log = load_events(
        source, mapping=QUOTED_MAPPING, chunk_rows=chunk_rows, quarantine_path=tmp_path / "q.jsonl"
    )

    assert log.events["item_id"].tolist() == ["i1", "i3,with comma", "i4"]
    assert log.events["category"].tolist() == ["two\nlines", 'say "hi"', "three\n\nlines"]
    assert rejects(tmp_path / "q.jsonl") == [
        (4, "ts", "bad timestamp", "u2,i2,oops,plain"),
        (9, "item", "missing id", "u5,,1600000005000,x"),
    ]


def test_an_unterminated_quote_costs_its_own_line_only(tmp_path):
    lines = [
        "user,item,ts,note",  # 1
        'u1,"i1"x,1600000001000,n',  # 2: text after a closing quote
        "u2,i2,1600000002000,n",  # 3
        'u3,i3,1600000003000,"never closed',  # 4
        "u4,i4,1600000004000,n",  # 5: read on its own, not swallowed by the open quote
    ]
    source = write(tmp_path / "export.csv", lines)

    log = load_events(source, mapping=QUOTED_MAPPING, quarantine_path=tmp_path / "q.jsonl")

    assert log.events["item_id"].tolist() == ["i2", "i4"]
    found = rejects(tmp_path / "q.jsonl")
    assert [(line, field, raw) for line, field, _, raw in found] == [
        (2, None, 'u1,"i1"x,1600000001000,n'),
        (4, None, 'u3,i3,1600000003000,"never closed'),
    ]
    assert found[0][2].startswith("unreadable record: ")
    assert found[1][2] == "unterminated quote from line 4"


def numbered_rows(n: int) -> list[str]:
    return [f"u{i},i{i},{1_600_000_000_000 + i},n" for i in range(n)]


@pytest.mark.parametrize("chunk_rows", [100, 1010, 500_000])  # 1010: a cut near the quote
def test_a_stray_quote_far_from_any_other_loses_no_following_row(tmp_path, chunk_rows):
    # Prepare: the log: 4,209 rows, a stray quote on line 1,002 and none after it
    rows = numbered_rows(4209)
    rows[1000] = 'u1000,i1000,1600000001000,5" screen'
    source = write(tmp_path / "export.csv", ["user,item,ts,note", *rows])

    # Execute
    log = load_events(
        source, mapping=QUOTED_MAPPING, chunk_rows=chunk_rows, quarantine_path=tmp_path / "q.jsonl"
    )

    # Assert: that line alone is quarantined; rows in = rows loaded + rows quarantined
    assert (log.n_rows, len(log.events), log.n_quarantined) == (4209, 4208, 1)
    assert rejects(tmp_path / "q.jsonl") == [
        (1002, None, "unterminated quote from line 1002", rows[1000])
    ]
    assert log.events["item_id"].iloc[-1] == "i4208"


@pytest.mark.parametrize("chunk_rows", [1, 5, 100])
def test_a_quoted_field_may_span_max_record_lines_and_no_more(tmp_path, chunk_rows):
    # Prepare: a note of exactly MAX_RECORD_LINES lines, then one a line longer
    body = [f"line {k}" for k in range(MAX_RECORD_LINES - 1)]
    longest = ['u0,i0,1600000000000,"first', *body[:-1], f'{body[-1]}"']
    too_long = ['u1,i1,1600000000001,"first', *body, 'last"']
    source = write(tmp_path / "export.csv", ["user,item,ts,note", *longest, *too_long])

    # Execute
    log = load_events(
        source, mapping=QUOTED_MAPPING, chunk_rows=chunk_rows, quarantine_path=tmp_path / "q.jsonl"
    )

    # Assert: the first loads whole; the second's open quote costs its line, and then each of its
    # lines is read alone (a wrong field count) down to its last, whose quote never closes either
    assert log.events["category"].tolist() == ["\n".join(["first", *body])]
    found = rejects(tmp_path / "q.jsonl")
    first = 2 + MAX_RECORD_LINES
    assert [line for line, *_ in found] == list(range(first, first + MAX_RECORD_LINES + 1))
    assert found[0][2] == f"unterminated quote from line {first}"
    assert found[-1][2] == f"unterminated quote from line {first + MAX_RECORD_LINES}"
    assert log.n_rows == len(log.events) + log.n_quarantined == 1 + MAX_RECORD_LINES + 1


def test_a_header_with_an_unterminated_quote_does_not_swallow_the_file(tmp_path):
    # Prepare: a header whose quote never closes, above rows that are all well formed
    source = write(tmp_path / "export.csv", ['user,item,"ts,note', *numbered_rows(50)])

    # Execute / Assert: the header alone is read (and refused), not the whole file as a header
    with pytest.raises(DataFormatError, match=r'export\.csv.*user,item,"ts,note\W'):
        load_events(source, mapping=QUOTED_MAPPING)


def test_a_carriage_return_inside_an_unquoted_field_is_quarantined(tmp_path):
    source = tmp_path / "export.csv"
    source.write_bytes(b"user,item,ts,note\nu1,i\r1,1600000001000,n\nu2,i2,1600000002000,n\n")

    log = load_events(source, mapping=QUOTED_MAPPING, quarantine_path=tmp_path / "q.jsonl")

    assert log.events["item_id"].tolist() == ["i2"]
    assert [(line, raw) for line, _, _, raw in rejects(tmp_path / "q.jsonl")] == [
        (2, "u1,i\r1,1600000001000,n")
    ]


def test_undecodable_bytes_become_replacement_characters_not_a_crash(tmp_path):
    source = tmp_path / "export.csv"
    source.write_bytes(b"user,item,ts,note\nu1,caf\xe9,1600000001000,n\n")

    log = load_events(source, mapping=QUOTED_MAPPING)

    assert log.events["item_id"].tolist() == ["caf\ufffd"]


def test_a_bad_parquet_row_is_quarantined_with_its_row_number(tmp_path):
    frame = pd.DataFrame(
        {
            "session_id": ["s", "s", "s"],
            "user_id": [None, None, None],
            "timestamp": [1_600_000_000_001, 1_600_000_000_002, 1_600_000_000_003],
            "item_id": ["a", "b", "c"],
            "category": [None, None, None],
            "action": np.array([0, 7, 2], dtype=np.int8),
            "channel": [None, None, None],
            "price": [1.0, 2.0, -1.0],
            "source": [None, None, None],
        }
    )
    frame.to_parquet(tmp_path / "events.parquet")

    log = load_events(tmp_path / "events.parquet", quarantine_path=tmp_path / "q.jsonl")

    assert log.events["item_id"].tolist() == ["a"]
    found = rejects(tmp_path / "q.jsonl")
    assert [(line, field, reason) for line, field, reason, _ in found] == [
        (2, "action", "unknown action"),
        (3, "price", "negative price"),
    ]
    assert '"item_id": "b"' in found[0][3]


def test_nothing_rejected_means_no_quarantine_file_and_a_stale_one_is_removed(tmp_path):
    stale = tmp_path / "q.jsonl"
    stale.write_text('{"line": 99}\n')
    source = write(tmp_path / "oct.csv", [REES46_HEADER, rees46_row()])

    log = load_events(source, quarantine_path=stale)

    assert (log.n_quarantined, log.quarantine_path, stale.exists()) == (0, None, False)


def test_without_a_path_rejects_go_to_a_temporary_file_that_is_reported(tmp_path, caplog):
    source = write(tmp_path / "oct.csv", [REES46_HEADER, rees46_row(kind="click"), rees46_row()])

    with caplog.at_level(logging.WARNING, logger="fedpath.data.loader"):
        log = load_events(source)

    try:
        assert log.quarantine_path is not None
        assert rejects(log.quarantine_path) == [
            (2, "event_type", "unknown action", rees46_row(kind="click"))
        ]
        assert f"1 records of {source} quarantined in {log.quarantine_path}" in caplog.text
    finally:
        log.quarantine_path.unlink()


def test_quarantine_keeps_raw_text_exactly_and_counts_records(tmp_path):
    raw = ['a,"b\nc",d', 'quote " and \\ backslash', "ünïcödé\t✓", "123"]

    with Quarantine(tmp_path / "q.jsonl") as quarantine:
        quarantine.add(
            file=Path("x.csv"), lines=np.array([3, 5, 8, 9]), field="f", reason="r", raw=raw
        )
        quarantine.add(
            file=Path("y.csv"), lines=np.array([1]), field=[None], reason=["s"], raw=["z"]
        )

    frame = read_quarantine(tmp_path / "q.jsonl")
    assert quarantine.count == 5
    assert frame["raw"].tolist() == [*raw, "z"]
    assert frame["line"].tolist() == [3, 5, 8, 9, 1]
    assert frame["file"].tolist() == ["x.csv"] * 4 + ["y.csv"]


def test_quarantine_insists_on_one_raw_record_per_line(tmp_path):
    with (
        Quarantine(tmp_path / "q.jsonl") as quarantine,
        pytest.raises(ValueError, match=r"raw must hold one entry per line \(2\), got 1"),
    ):
        quarantine.add(file=Path("x"), lines=np.array([1, 2]), field=None, reason="r", raw=["a"])


def test_a_log_that_is_all_bad_loads_as_an_empty_canonical_table(tmp_path):
    source = write(tmp_path / "oct.csv", [REES46_HEADER, rees46_row(kind="zap")])

    log = load_events(source, quarantine_path=tmp_path / "q.jsonl")

    assert (len(log.events), log.n_rows, log.n_quarantined) == (0, 1, 1)
    assert list(log.events.columns) == list(EVENT_COLUMNS)
    assert log.events["action"].dtype == np.int8


def test_unsupported_and_known_actions_come_from_the_mapping(tmp_path):
    mapping = ColumnMapping(
        columns={"user_id": "u", "item_id": "i", "timestamp": "t", "action": "a"},
        action_values={"see": Action.VIEW, "wish": None},
        timestamp_unit="s",
    )
    rows = ["1,2,1600000000,see", "1,2,1600000000,wish", "1,2,1600000000,SEE"]
    source = write(tmp_path / "x.csv", ["u,i,t,a", *rows])

    log = load_events(source, mapping=mapping, quarantine_path=tmp_path / "q.jsonl")

    assert log.events["timestamp"].tolist() == [1_600_000_000_000]
    assert [reason for _, _, reason, _ in rejects(tmp_path / "q.jsonl")] == [
        "unsupported action",
        "unknown action",
    ]
