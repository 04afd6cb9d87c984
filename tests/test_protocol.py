"""The benchmark protocol: filters to a fixed point, time split, held-out cleaning, censoring."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fedpath.data.containers import SplitDataset
from fedpath.data.hashing import ItemHasher
from fedpath.data.loader import load_events
from fedpath.data.protocol import SPLITS, ProtocolConfig, apply_protocol
from fedpath.errors import ConfigError
from fedpath.schema import Action, conform

MINUTE = 60_000
ALL_TRAIN = ProtocolConfig(valid_fraction=0, test_fraction=0)
V, C, P = int(Action.VIEW), int(Action.CART), int(Action.PURCHASE)


def _events(rows: list[tuple], **columns: list) -> pd.DataFrame:
    """Events from (session_id, item_id, timestamp[, action]) rows, optional columns beside."""
    frame = pd.DataFrame(
        [(*row, V)[:4] for row in rows], columns=["session_id", "item_id", "timestamp", "action"]
    )
    return conform(frame.assign(**columns))


def _paths(split: SplitDataset, name: str) -> list[tuple[str, list[str]]]:
    """The sessions of one split as (key, raw item ids), to compare with hand-made expectations."""
    return [(s.key, [split.vocab[i] for i in s.items]) for s in getattr(split, name)]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_item_count", 0, "min_item_count must be an int >= 1, got 0"),
        ("min_session_length", 2.0, "min_session_length must be an int >= 1, got 2.0"),
        ("max_prefix_length", True, "max_prefix_length must be an int >= 1, got True"),
        ("valid_fraction", -0.1, r"valid_fraction must be a number in \[0, 1\), got -0.1"),
        ("test_fraction", 1.0, r"test_fraction must be a number in \[0, 1\), got 1.0"),
        ("test_fraction", 0.9, "valid_fraction \\+ test_fraction must be < 1"),
        ("gap_minutes", 0, "gap_minutes must be a number > 0, got 0"),
        ("censor_window_minutes", -1, "censor_window_minutes must be None or >= 0, got -1"),
        ("item_buckets", 0, "item_buckets must be an int >= 1, got 0"),
        ("item_buckets", 64, "item_buckets and item_key_path must be set together"),
        ("item_key_path", "key.bin", "item_buckets and item_key_path must be set together"),
    ],
)
def test_config_values_outside_their_rule_are_refused(
    field: str, value: object, message: str
) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=message):
        ProtocolConfig(**{field: value})  # type: ignore[arg-type]


def test_defaults_are_the_notes_protocol() -> None:
    # Execute
    config = ProtocolConfig()

    # Assert
    assert (config.min_item_count, config.min_session_length) == (2, 2)
    assert (config.valid_fraction, config.test_fraction) == (0.1, 0.2)
    assert (config.max_prefix_length, config.gap_minutes) == (50, 30)


def test_filters_repeat_until_nothing_changes() -> None:
    # Prepare: dropping the rare X joins C C in s1, which collapses to one event and leaves;
    # then C is seen once and leaves s2, which is left too short. Only s3 and s4 survive.
    events = _events(
        [
            ("s1", "C", 0), ("s1", "X", 1), ("s1", "C", 2),
            ("s2", "C", 10), ("s2", "D", 11),
            ("s3", "D", 20), ("s3", "E", 21),
            ("s4", "E", 30), ("s4", "D", 31),
        ]
    )  # fmt: skip

    # Execute
    split = apply_protocol(events, ALL_TRAIN)

    # Assert
    assert _paths(split, "train") == [("s3", ["D", "E"]), ("s4", ["E", "D"])]
    assert split.vocab == ["D", "E"]


def test_a_collapsed_run_keeps_its_strongest_action() -> None:
    # Prepare: A viewed, carted, viewed again, then B bought; and B viewed twice in s2
    events = _events(
        [
            ("s1", "A", 0, V), ("s1", "A", 1, C), ("s1", "A", 2, V), ("s1", "B", 3, P),
            ("s2", "A", 10, V), ("s2", "B", 11, V), ("s2", "B", 12, V),
        ]
    )  # fmt: skip

    # Execute
    split = apply_protocol(events, ALL_TRAIN)

    # Assert
    assert [s.actions.tolist() for s in split.train] == [[C, P], [V, V]]
    assert [s.converts for s in split.train] == [True, False]


def test_events_are_ordered_by_time_with_file_order_breaking_ties() -> None:
    # Prepare: rows out of time order; B and C share a timestamp, C comes first in the file
    events = _events([("s", "C", 5), ("s", "A", 0), ("s", "B", 5), ("t", "B", 9), ("t", "A", 9)])
    config = ProtocolConfig(min_item_count=1, valid_fraction=0, test_fraction=0)

    # Execute
    split = apply_protocol(events, config)

    # Assert
    assert _paths(split, "train") == [("s", ["A", "C", "B"]), ("t", ["B", "A"])]


def test_sessions_split_by_start_with_ties_on_key_and_half_up_rounding() -> None:
    # Prepare: 25 sessions; "k00" and "k01" start together (file order says k01 first)
    starts = [0, 0, *range(2, 25)]
    keys = ["k01", "k00", *(f"k{n:02d}" for n in range(2, 25))]
    events = _events([(k, item, t * MINUTE + j) for k, t in zip(keys, starts, strict=True)
                      for j, item in enumerate("AB")])  # fmt: skip

    # Execute
    split = apply_protocol(events, ProtocolConfig())

    # Assert: test = 0.2 * 25 = 5, valid = 0.1 * 25 = 2.5 -> 3 (half up), train = 17
    assert [s.key for s in split.train] == [f"k{n:02d}" for n in range(17)]
    assert [s.key for s in split.valid] == ["k17", "k18", "k19"]
    assert [s.key for s in split.test] == ["k20", "k21", "k22", "k23", "k24"]


def test_a_session_starts_at_its_first_logged_event_even_when_filtered_out() -> None:
    # Prepare: x opens at t=0 on an item seen once (dropped), y opens at t=50
    events = _events(
        [("x", "rare", 0), ("x", "A", 100), ("x", "B", 101), ("y", "A", 50), ("y", "B", 51)]
    )
    config = ProtocolConfig(valid_fraction=0, test_fraction=0.5)

    # Execute
    split = apply_protocol(events, config)

    # Assert
    assert [s.key for s in split.train] == ["x"] and split.train[0].start == 0
    assert [s.key for s in split.test] == ["y"]


def test_held_out_sessions_lose_unknown_items_and_are_collapsed_again() -> None:
    # Prepare: train is t1, t2 (items A, B); N and M are never in train
    events = _events(
        [
            ("t1", "A", 0), ("t1", "B", 1),
            ("t2", "B", 10), ("t2", "A", 11),
            ("h1", "A", 20, V), ("h1", "N", 21), ("h1", "A", 22, C), ("h1", "B", 23),
            ("h2", "N", 30), ("h2", "A", 31), ("h2", "M", 32), ("h2", "M", 33), ("h2", "N", 34),
        ]
    )  # fmt: skip
    config = ProtocolConfig(valid_fraction=0, test_fraction=0.5)

    # Execute
    split = apply_protocol(events, config)

    # Assert: h1 is A A B -> A(cart) B; h2 keeps only A and is dropped as too short
    assert split.vocab == ["A", "B"]
    assert _paths(split, "test") == [("h1", ["A", "B"])]
    assert split.test[0].actions.tolist() == [C, V]


def test_vocabulary_is_train_items_by_first_appearance_and_stats_count_each_split() -> None:
    # Prepare: sessions start in order a, b, c, d, e; the last (round(1.0)) is test
    events = _events(
        [
            ("a", "Z", 0), ("a", "Y", 1),
            ("b", "X", 10), ("b", "Z", 11), ("b", "Y", 12),
            ("c", "Y", 20), ("c", "X", 21),
            ("d", "Z", 30), ("d", "X", 31),
            ("e", "X", 40), ("e", "Y", 41), ("e", "Z", 42),
        ]
    )  # fmt: skip
    config = ProtocolConfig(valid_fraction=0, test_fraction=0.2, censor_window_minutes=None)

    # Execute
    split = apply_protocol(events, config)

    # Assert
    assert split.vocab == ["Z", "Y", "X"]
    assert [s.items.tolist() for s in split.train] == [[0, 1], [2, 0, 1], [1, 2], [0, 2]]
    assert split.stats == {
        "items": 3,
        "train_sessions": 4, "train_cases": 9, "train_item_cases": 5, "train_censored": 0,
        "valid_sessions": 0, "valid_cases": 0, "valid_item_cases": 0, "valid_censored": 0,
        "test_sessions": 1, "test_cases": 3, "test_item_cases": 2, "test_censored": 0,
    }  # fmt: skip


def test_sessions_ending_near_the_cut_are_censored() -> None:
    # Prepare: the log ends at minute 100; s ends at 69 (31 min before), t at 70 (30 min before)
    events = _events(
        [
            ("s", "A", 0), ("s", "B", 69 * MINUTE),
            ("t", "A", 1), ("t", "B", 70 * MINUTE),
            ("u", "B", 2), ("u", "A", 100 * MINUTE),
        ]
    )  # fmt: skip

    # Execute
    windowed = apply_protocol(events, ALL_TRAIN)
    complete = apply_protocol(events, ProtocolConfig(valid_fraction=0, test_fraction=0,
                                                     censor_window_minutes=None))  # fmt: skip

    # Assert
    assert [(s.key, s.censored) for s in windowed.train] == [("s", False), ("t", True), ("u", True)]
    assert not any(s.censored for s in complete.train)


def test_sessions_carry_their_most_frequent_label() -> None:
    # Prepare: s has channel app, pc, pc, None; t has a tie app/pc (app first); no sources
    events = _events(
        [("s", "A", 0), ("s", "B", 1), ("s", "A", 2), ("s", "B", 3),
         ("t", "B", 10), ("t", "A", 11)],
        channel=["app", "pc", "pc", None, "app", "pc"],
        category=["shoes", None, None, None, None, None],
    )  # fmt: skip

    # Execute
    split = apply_protocol(events, ALL_TRAIN)

    # Assert
    assert [(s.channel, s.category, s.source) for s in split.train] == [
        ("pc", "shoes", None), ("app", None, None)
    ]  # fmt: skip


def test_logs_without_sessions_are_cut_at_the_inactivity_gap() -> None:
    # Prepare: one user, a 31-minute pause between A B and B A
    events = _events(
        [(None, "A", 0), (None, "B", MINUTE), (None, "B", 32 * MINUTE), (None, "A", 33 * MINUTE)],
        user_id=["u"] * 4,
    )

    # Execute
    split = apply_protocol(events, ALL_TRAIN)

    # Assert
    assert _paths(split, "train") == [("u:0", ["A", "B"]), ("u:1", ["B", "A"])]


def test_the_protocol_can_run_in_the_hashed_item_space(tmp_path: Path) -> None:
    # Prepare
    key = b"partners-shared-secret-key-32byt"
    (tmp_path / "item.key").write_bytes(key)
    events = _events([("s", "A", 0), ("s", "B", 1), ("t", "B", 2), ("t", "A", 3)])
    config = ProtocolConfig(
        valid_fraction=0, test_fraction=0, item_buckets=2**20, item_key_path=tmp_path / "item.key"
    )
    hasher = ItemHasher(key, 2**20)

    # Execute
    split = apply_protocol(events, config)

    # Assert
    assert split.vocab == [f"h{hasher.bucket('A')}", f"h{hasher.bucket('B')}"]
    assert [s.items.tolist() for s in split.train] == [[0, 1], [1, 0]]


def test_a_log_that_keeps_no_session_is_refused() -> None:
    # Prepare: every item is seen once
    events = _events([("s", "A", 0), ("s", "B", 1)])

    # Execute / Assert
    with pytest.raises(ValueError, match="at least one session after the filters"):
        apply_protocol(events, ProtocolConfig())


@pytest.mark.parametrize(
    ("sample", "sessions", "items", "item_cases"),
    [
        ("diginetica-sample/sample_train-item-views.csv", (688, 56, 121), 1169, (2238, 149, 266)),
        ("rees46-multicategory-sample/2019-Oct-head.csv", (201, 22, 54), 232, (480, 38, 92)),
    ],
)
def test_the_real_samples_give_the_notes_sizes(
    shared_data: Path,
    sample: str,
    sessions: tuple[int, int, int],
    items: int,
    item_cases: tuple[int, int, int],
) -> None:
    # Prepare
    events = load_events(shared_data / sample).events

    # Execute
    split = apply_protocol(events, ProtocolConfig())

    # Assert: figures from ../shared/notes/evaluation-protocol.md
    assert tuple(split.stats[f"{n}_sessions"] for n in SPLITS) == sessions
    assert split.n_items == items
    assert tuple(split.stats[f"{n}_item_cases"] for n in SPLITS) == item_cases
    starts = [s.start for s in (*split.train, *split.valid, *split.test)]
    assert starts == sorted(starts)


def test_the_rees46_window_cut_censors_the_sessions_still_open_at_its_end(
    shared_data: Path,
) -> None:
    # Prepare: the sample spans 00:00:00 .. 02:28:17, so sessions ending after 01:58:17 are open
    events = load_events(shared_data / "rees46-multicategory-sample/2019-Oct-head.csv").events
    cut = pd.Timestamp("2019-10-01 01:58:17", tz="UTC").value // 1_000_000

    # Execute
    split = apply_protocol(events, ProtocolConfig())

    # Assert: censoring follows each session's last logged event, kept or filtered
    last = events.groupby("session_id")["timestamp"].max()
    for session in (*split.train, *split.valid, *split.test):
        assert session.censored == (last[session.key] >= cut)
