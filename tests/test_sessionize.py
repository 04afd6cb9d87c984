"""Sessionization: a user's stream is cut at inactivity gaps, the log's own sessions are kept."""

from __future__ import annotations

import pandas as pd
import pytest

from fedpath.data.sessionize import sessionize
from fedpath.schema import conform

MINUTE = 60_000


def _events(session_ids: list, users: list, minutes: list[float]) -> pd.DataFrame:
    return conform(
        pd.DataFrame(
            {
                "session_id": session_ids,
                "user_id": users,
                "timestamp": [int(m * MINUTE) for m in minutes],
                "item_id": [f"i{n}" for n in range(len(minutes))],
                "action": 0,
            }
        )
    )


def test_a_gap_longer_than_the_limit_starts_a_new_session_and_an_equal_one_does_not() -> None:
    # Prepare: gaps of exactly 30 min, then 30 min + 1 ms
    events = _events([None] * 3, ["u"] * 3, [0, 30, 60 + 1 / MINUTE])

    # Execute
    out = sessionize(events, gap_minutes=30)

    # Assert
    assert out["session_id"].tolist() == ["u:0", "u:0", "u:1"]


def test_sessions_are_numbered_per_user_in_time_order_and_rows_keep_their_order() -> None:
    # Prepare: rows out of time order, two users interleaved
    events = _events([None] * 5, ["b", "a", "b", "a", "b"], [100, 5, 0, 0, 200])

    # Execute
    out = sessionize(events, gap_minutes=30)

    # Assert: b's stream is 0 | 100 | 200 (three sessions); a's is 0, 5 (one session)
    assert out["session_id"].tolist() == ["b:1", "a:0", "b:0", "a:0", "b:2"]
    assert out["item_id"].tolist() == events["item_id"].tolist()


def test_rows_with_a_session_id_keep_it() -> None:
    # Prepare
    events = _events(["s9", None, "s9"], ["u", "u", "u"], [0, 1, 2])

    # Execute
    out = sessionize(events, gap_minutes=30)

    # Assert
    assert out["session_id"].tolist() == ["s9", "u:0", "s9"]


def test_a_log_with_every_session_id_is_returned_unchanged() -> None:
    # Prepare
    events = _events(["a", "b"], [None, None], [0, 1])

    # Execute
    out = sessionize(events)

    # Assert
    assert out is events


def test_rows_with_neither_session_nor_user_are_refused_naming_the_first_row() -> None:
    # Prepare
    events = _events([None, "s", None], ["u", None, None], [0, 1, 2])

    # Execute / Assert
    with pytest.raises(ValueError, match=r"1 rows with neither \(first at row 2\)"):
        sessionize(events)


@pytest.mark.parametrize("gap", [0, -5])
def test_a_non_positive_gap_is_refused(gap: float) -> None:
    # Prepare
    events = _events([None], ["u"], [0])

    # Execute / Assert
    with pytest.raises(ValueError, match="gap_minutes must be > 0"):
        sessionize(events, gap_minutes=gap)
