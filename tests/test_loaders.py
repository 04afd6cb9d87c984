"""Each log format on a tiny hand-written fixture, the real samples, detection and its errors."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from fedpath.data.convert import MIN_MS
from fedpath.data.detect import detect_format
from fedpath.data.formats import FORMATS, ColumnMapping
from fedpath.data.loader import iter_events, load_events
from fedpath.data.quarantine import Quarantine
from fedpath.errors import ConfigError, DataFormatError
from fedpath.schema import EVENT_COLUMNS, EVENT_DTYPES, Action, conform

FIXTURES = Path(__file__).resolve().parent / "data" / "loaders"
V, C, P = int(Action.VIEW), int(Action.CART), int(Action.PURCHASE)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SHOP_MAPPING = ColumnMapping(
    columns={
        "timestamp": "when",
        "user_id": "shopper",
        "session_id": "visit",
        "item_id": "sku",
        "action": "what",
        "price": "amount",
        "category": "dept",
    },
    timestamp_format="ISO8601",
    action_values={"click": Action.VIEW, "basket": Action.CART, "order": Action.PURCHASE},
    delimiter="|",
)


def ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO date/time read as UTC (computed apart from pandas)."""
    return (datetime.fromisoformat(text).replace(tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)


def table(**columns: list) -> pd.DataFrame:
    """A canonical table from column lists; columns not given are unknown (None / NaN)."""
    return conform(
        pd.DataFrame({k: pd.Series(v, dtype=EVENT_DTYPES[k]) for k, v in columns.items()})
    )


def test_diginetica_rows_are_views_at_eventdate_plus_timeframe():
    # Prepare
    want = table(
        session_id=["1", "1", "2"],
        user_id=[None, None, "5"],
        timestamp=[
            ms("2016-05-09") + 526309,
            ms("2016-05-09") + 1031018,
            ms("2016-05-10"),
        ],
        item_id=["81766", "31331", "32118"],
        action=[V, V, V],
    )
    # Execute
    log = load_events(FIXTURES / "train-item-views.csv")
    # Assert
    assert (log.fmt, log.n_rows, log.n_quarantined, log.quarantine_path) == (
        "diginetica",
        3,
        0,
        None,
    )
    assert_frame_equal(log.events, want)
    assert log.events["user_id"].iloc[0] is None  # "NA" is unknown, held as None


def test_yoochoose_clicks_load_with_their_sibling_buys():
    want = table(
        session_id=["1", "1", "2", "2"],
        timestamp=[
            ms("2014-04-07T10:51:09.277"),
            ms("2014-04-07T10:54:09.868"),
            ms("2014-04-06T22:59:20.021"),
            ms("2014-04-06T23:01:12.123"),
        ],
        item_id=["214536502", "214536500", "214662819", "214662819"],
        category=[None, "S", "2", None],
        action=[V, V, V, P],
        price=[float("nan"), float("nan"), float("nan"), 1046.0],
    )

    log = load_events(FIXTURES / "yoochoose-clicks.dat")

    assert (log.fmt, log.n_rows, log.n_quarantined) == ("yoochoose", 4, 0)
    assert_frame_equal(log.events, want)


def test_yoochoose_clicks_without_a_buys_file_load_alone(tmp_path):
    shutil.copy(FIXTURES / "yoochoose-clicks.dat", tmp_path / "yoochoose-clicks.dat")

    log = load_events(tmp_path / "yoochoose-clicks.dat")

    assert log.n_rows == 3
    assert log.events["action"].tolist() == [V, V, V]


def test_yoochoose_buys_alone_are_purchases():
    log = load_events(FIXTURES / "yoochoose-buys.dat")

    assert log.fmt == "yoochoose-buys"
    assert log.events[["session_id", "item_id", "action", "price"]].values.tolist() == [
        ["2", "214662819", P, 1046.0]
    ]


def test_retailrocket_events_map_actions_and_have_no_session():
    want = table(
        user_id=["257597", "992329", "111016"],
        timestamp=[1433221332117, 1433224214164, 1433221999827],
        item_id=["355908", "248676", "318965"],
        action=[V, C, P],
    )

    log = load_events(FIXTURES / "events.csv")

    assert log.fmt == "retailrocket"
    assert_frame_equal(log.events, want)
    assert log.events["session_id"].isna().all()


def test_rees46_rows_keep_the_top_level_category_and_price():
    want = table(
        session_id=[
            "72d76fde-8bb3-4e00-8c23-a032dfed738c",
            "566511c2-e2e3-422b-b695-cf8e6e792ca8",
            "7c90fc70-0e80-4590-96f3-13c02c18c713",
        ],
        user_id=["541312140", "519107250", "550050854"],
        timestamp=[
            ms("2019-10-01T00:00:00"),
            ms("2019-10-01T00:00:01"),
            ms("2019-10-01T00:02:14"),
        ],
        item_id=["44600062", "17200506", "1307067"],
        category=[None, "furniture", "computers"],
        action=[V, C, P],
        price=[35.79, 543.10, 251.74],
    )

    log = load_events(FIXTURES / "rees46-tiny.csv")

    assert log.fmt == "rees46"
    assert_frame_equal(log.events, want)


def test_taobao_seconds_become_milliseconds_and_fav_is_a_view():
    want = table(
        user_id=["1", "1", "100", "100"],
        timestamp=[1511544070000, 1511561733000, 1511572885000, 1511593493000],
        item_id=["2268318", "2333346", "2576651", "3830808"],
        category=["2520377", "2520771", "149192", "4181361"],
        action=[V, V, C, P],
    )

    log = load_events(FIXTURES / "UserBehavior.csv")

    assert log.fmt == "taobao"
    assert_frame_equal(log.events, want)


def test_native_fedpath_csv_reads_back_and_is_marked_synthetic_by_its_sidecar():
    want = table(
        session_id=["s1", "s1", "s2"],
        user_id=["u1", "u1", None],
        timestamp=[1700000000000, 1700000005000, 1700000100000],
        item_id=["i1", "i2", "i3"],
        category=["shoes", "shoes", None],
        action=[V, C, P],
        channel=["app", "app", "pc"],
        price=[float("nan"), 19.5, 5.0],
        source=["partner-a", "partner-a", None],
    )

    log = load_events(FIXTURES / "synthetic-events.csv")

    assert (log.fmt, log.synthetic) == ("fedpath", True)
    assert_frame_equal(log.events, want)


def test_a_log_without_sidecar_is_not_synthetic(tmp_path):
    shutil.copy(FIXTURES / "synthetic-events.csv", tmp_path / "events.csv")

    assert load_events(tmp_path / "events.csv").synthetic is False


def test_a_sidecar_that_is_not_json_is_a_data_format_error(tmp_path):
    shutil.copy(FIXTURES / "synthetic-events.csv", tmp_path / "events.csv")
    (tmp_path / "events.csv.meta.json").write_text("synthetic: yes")

    with pytest.raises(DataFormatError, match=r"events\.csv\.meta\.json"):
        load_events(tmp_path / "events.csv")


def test_native_parquet_round_trips_a_canonical_table(tmp_path):
    frame = table(
        session_id=["a", "a", None],
        user_id=[None, "u", "u"],
        timestamp=[MIN_MS, 1234567890123, 1700000000001],  # MIN_MS: the earliest accepted
        item_id=["x", "y", "z"],
        category=["c", None, "c"],
        action=[V, P, C],
        channel=[None, "app", "pc"],
        price=[0.1, float("nan"), 99.99],
        source=["s", "s", None],
    )
    frame.to_parquet(tmp_path / "events.parquet")

    log = load_events(tmp_path / "events.parquet")

    assert log.fmt == "fedpath"
    assert_frame_equal(log.events, frame)


def test_generic_csv_with_a_mapping_reads_quoted_and_multiline_fields():
    want = table(
        session_id=["v1", "v1", "v2"],
        user_id=["u7", "u7", "u8"],
        timestamp=[
            ms("2024-03-01T10:00:00"),
            ms("2024-03-01T10:05:30"),
            ms("2024-03-01T10:07:00.250"),
        ],
        item_id=["sku|1", "sku2", "sku3"],
        category=["Home", "Garden\n& Patio", None],
        action=[V, C, P],
        price=[3.5, float("nan"), 12.0],
    )

    log = load_events(FIXTURES / "shop-export.csv", mapping=SHOP_MAPPING)

    assert (log.fmt, log.n_rows, log.n_quarantined) == ("generic", 3, 0)
    assert_frame_equal(log.events, want)


def test_generic_parquet_reads_typed_columns_through_the_mapping(tmp_path):
    pd.DataFrame(
        {
            "at": pd.to_datetime(["2024-01-02 03:04:05.678", "2024-01-02 03:04:06.000"], utc=True),
            "sku": [42, 43],
            "kind": ["see", "pay"],
            "who": ["ann", "bob"],
        }
    ).to_parquet(tmp_path / "export.parquet")
    mapping = ColumnMapping(
        columns={"timestamp": "at", "item_id": "sku", "action": "kind", "user_id": "who"},
        timestamp_format="ISO8601",
        action_values={"see": Action.VIEW, "pay": Action.PURCHASE},
    )

    log = load_events(tmp_path / "export.parquet", mapping=mapping)

    assert log.events["timestamp"].tolist() == [
        ms("2024-01-02T03:04:05.678"),
        ms("2024-01-02T03:04:06"),
    ]
    assert log.events[["item_id", "user_id", "action"]].values.tolist() == [
        ["42", "ann", V],
        ["43", "bob", P],
    ]


def test_real_diginetica_sample_loads_every_row(shared_data):
    log = load_events(shared_data / "diginetica-sample" / "sample_train-item-views.csv")

    events = log.events
    assert (log.fmt, log.n_rows, log.n_quarantined) == ("diginetica", 12_391, 0)
    assert len(events) == 12_391
    assert events["session_id"].nunique() == 2_986
    assert events["item_id"].nunique() == 7_139
    assert events["user_id"].notna().sum() == 4_710
    days = pd.to_datetime(events["timestamp"], unit="ms").dt.strftime("%Y-%m-%d")
    assert (days.min(), days.max()) == ("2016-01-03", "2016-06-01")


def test_real_rees46_sample_loads_every_row(shared_data):
    log = load_events(shared_data / "rees46-multicategory-sample" / "2019-Oct-head.csv")

    events = log.events
    assert (log.fmt, log.n_rows, log.n_quarantined) == ("rees46", 5_019, 0)
    assert events["action"].value_counts().to_dict() == {V: 4_915, C: 50, P: 54}
    assert events["session_id"].nunique() == 1_906
    assert events["user_id"].nunique() == 1_755
    assert events["item_id"].nunique() == 2_312
    assert (events["timestamp"].min(), events["timestamp"].max()) == (
        ms("2019-10-01T00:00:00"),
        ms("2019-10-01T02:28:17"),
    )
    categories = events["category"].value_counts(dropna=False)
    assert (categories["electronics"], categories[None], categories["appliances"]) == (
        2_066,
        1_575,
        497,
    )


def test_real_sample_streams_in_bounded_chunks_that_add_up_to_the_whole(shared_data):
    path = shared_data / "rees46-multicategory-sample" / "2019-Oct-head.csv"

    with Quarantine() as quarantine:
        chunks = list(iter_events(path, chunk_rows=1_000, quarantine=quarantine))

    assert [len(c) for c in chunks] == [1_000] * 5 + [19]
    assert_frame_equal(pd.concat(chunks, ignore_index=True), load_events(path).events)


@pytest.mark.parametrize(
    ("name", "mapping"),
    [
        ("train-item-views.csv", None),
        ("yoochoose-clicks.dat", None),
        ("events.csv", None),
        ("rees46-tiny.csv", None),
        ("UserBehavior.csv", None),
        ("synthetic-events.csv", None),
        ("shop-export.csv", SHOP_MAPPING),
    ],
)
@pytest.mark.parametrize("chunk_rows", [1, 2, 3])
def test_small_chunks_give_the_same_table_as_one_chunk(name, mapping, chunk_rows):
    whole = load_events(FIXTURES / name, mapping=mapping)

    chunked = load_events(FIXTURES / name, mapping=mapping, chunk_rows=chunk_rows)

    assert_frame_equal(chunked.events, whole.events)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("train-item-views.csv", "diginetica"),
        ("yoochoose-clicks.dat", "yoochoose"),
        ("yoochoose-buys.dat", "yoochoose-buys"),
        ("events.csv", "retailrocket"),
        ("rees46-tiny.csv", "rees46"),
        ("UserBehavior.csv", "taobao"),
        ("synthetic-events.csv", "fedpath"),
    ],
)
def test_detection_names_each_fixture_format(name, fmt):
    assert detect_format(FIXTURES / name) == fmt


def test_detection_reads_a_parquet_schema(tmp_path):
    table(item_id=["i"], session_id=["s"], timestamp=[1], action=[V]).to_parquet(
        tmp_path / "x.parquet"
    )

    assert detect_format(tmp_path / "x.parquet") == "fedpath"


def test_detection_accepts_a_header_with_extra_columns_in_another_order(tmp_path):
    path = tmp_path / "retail.csv"
    path.write_text("itemid,event,visitorid,timestamp,transactionid,store\n1,view,2,3,,x\n")

    assert detect_format(path) == "retailrocket"


def test_an_unknown_format_error_names_the_file_its_header_and_every_format(tmp_path):
    path = tmp_path / "mystery.csv"
    path.write_text("when,who,what\n1,2,3\n")

    with pytest.raises(DataFormatError) as caught:
        load_events(path)

    message = str(caught.value)
    assert str(path) in message
    assert "'when,who,what'" in message
    for log_format in FORMATS.values():
        assert log_format.mapping.delimiter.join(log_format.columns) in message
    assert "UserBehavior*.csv" in message
    assert "data.columns.item=" in message


def test_a_named_format_whose_columns_are_missing_names_them(tmp_path):
    path = tmp_path / "oct.csv"
    path.write_text("event_time,event_type,product_id,category_code,user_id,user_session\n")

    with pytest.raises(DataFormatError) as caught:
        load_events(path, fmt="rees46")

    message = str(caught.value)
    assert str(path) in message
    assert "['price']" in message
    assert ",".join(FORMATS["rees46"].columns) in message


def test_an_empty_file_has_no_header_to_detect(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    with pytest.raises(DataFormatError, match="first line reads ''"):
        detect_format(path)


def test_a_headerless_format_on_an_empty_file_loads_nothing(tmp_path):
    path = tmp_path / "UserBehavior.csv"
    path.write_bytes(b"")

    log = load_events(path)

    assert (log.n_rows, list(log.events.columns)) == (0, list(EVENT_COLUMNS))


@pytest.mark.parametrize(
    ("fmt", "mapping", "match"),
    [
        ("nope", None, r"fmt must be one of \[.*'rees46'.*\], got 'nope'"),
        ("generic", None, "mapping must be given for fmt 'generic'"),
        ("rees46", SHOP_MAPPING, "fmt must be None or 'generic' when a mapping is given"),
    ],
)
def test_format_choices_outside_the_known_set_are_config_errors(fmt, mapping, match):
    with pytest.raises(ConfigError, match=match):
        load_events(FIXTURES / "events.csv", fmt=fmt, mapping=mapping)


def test_chunk_rows_must_be_positive():
    with pytest.raises(ValueError, match="chunk_rows must be >= 1, got 0"):
        load_events(FIXTURES / "events.csv", chunk_rows=0)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"columns": {"item_id": "i", "timestamp": "t", "colour": "c", "user_id": "u"}}, "colour"),
        ({"columns": {"timestamp": "t", "user_id": "u"}}, "must map 'item_id'"),
        ({"columns": {"item_id": "i", "timestamp": "t"}}, "session_id or user_id"),
        ({"action_values": None}, "action_values must be given exactly when"),
        ({"timestamp_unit": "minutes"}, "timestamp_unit must be one of"),
        ({"delimiter": "::"}, "delimiter must be one character"),
        ({"delimiter": '"'}, "delimiter must be one character"),
        ({"header": ("t", "i")}, r"header must name every mapped column, missing \['u', 'a'\]"),
    ],
)
def test_column_mapping_rejects_what_a_load_could_not_honour(changes, match):
    settings = {
        "columns": {"timestamp": "t", "item_id": "i", "user_id": "u", "action": "a"},
        "action_values": {"x": Action.VIEW},
        **changes,
    }

    with pytest.raises(ConfigError, match=match):
        ColumnMapping(**settings)


def test_column_mapping_from_plain_config_values():
    config = {
        "columns": {"timestamp": "t", "item_id": "i", "user_id": "u", "action": "a"},
        "action_values": {"click": "view", "buy": "PURCHASE", "undo": None},
        "header": ["t", "i", "u", "a"],
        "null_values": ["-"],
        "timestamp_unit": "s",
    }

    mapping = ColumnMapping.from_dict(config)

    assert mapping == ColumnMapping(
        columns={"timestamp": "t", "item_id": "i", "user_id": "u", "action": "a"},
        action_values={"click": Action.VIEW, "buy": Action.PURCHASE, "undo": None},
        header=("t", "i", "u", "a"),
        null_values=frozenset({"-"}),
        timestamp_unit="s",
    )


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"columns": {"item_id": "i", "user_id": "u", "timestamp": "t"}, "sep": ";"}, "'sep'"),
        (
            {
                "columns": {"item_id": "i", "user_id": "u", "timestamp": "t", "action": "a"},
                "action_values": {"x": "wishlist"},
            },
            "action must be one of",
        ),
    ],
)
def test_column_mapping_from_config_rejects_unknown_keys_and_actions(config, match):
    with pytest.raises(ConfigError, match=match):
        ColumnMapping.from_dict(config)


def test_a_damaged_parquet_file_is_a_data_format_error(tmp_path):
    path = tmp_path / "events.parquet"
    path.write_bytes(b"PAR1 not really parquet PAR1")

    with pytest.raises(DataFormatError, match=r"cannot read .*events\.parquet as Parquet"):
        load_events(path, fmt="fedpath")
