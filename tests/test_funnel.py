"""The data funnel: hand-counted stages, and rebuilding it from securely summed counts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from session_data import session

from fedpath.data.cases import expand_prefixes
from fedpath.data.loader import load_events
from fedpath.metrics.funnel import (
    ConversionCheck,
    Funnel,
    conversion_sums,
    funnel,
    funnel_counts,
)
from fedpath.schema import Action, conform

V, C, P = Action.VIEW, Action.CART, Action.PURCHASE


def events_of(rows: list[tuple[str, int, str | None]]) -> pd.DataFrame:
    """A canonical events table from (session, action, channel) rows, one second apart."""
    return conform(
        pd.DataFrame(
            {
                "session_id": [r[0] for r in rows],
                "timestamp": np.arange(len(rows), dtype=np.int64) * 1000,
                "item_id": [f"i{n}" for n in range(len(rows))],
                "action": [int(r[1]) for r in rows],
                "channel": [r[2] for r in rows],
            }
        )
    )


# s1 only views, s2 carts, s3 buys after a cart, s4 buys without a logged cart ("buy now"),
# s5 views once; s4 has no known channel.
EVENTS = events_of(
    [
        ("s1", V, "app"),
        ("s1", V, "app"),
        ("s2", V, "app"),
        ("s2", C, "app"),
        ("s3", V, "pc"),
        ("s3", C, "pc"),
        ("s3", P, "pc"),
        ("s4", P, None),
        ("s5", V, "pc"),
    ]
)


def test_stages_count_the_furthest_step_of_each_session() -> None:
    # Execute
    result = funnel(EVENTS)

    # Assert: all 5 sessions viewed; s2, s3, s4 passed the cart; s3, s4 bought.
    assert result.reached == (5, 3, 2)
    assert result.by_channel == {"app": (2, 1, 0), "pc": (2, 1, 1)}


def test_rows_carry_rates_and_drop_off() -> None:
    # Execute
    rows = {(r["segment"], r["stage"]): r for r in funnel(EVENTS).as_rows()}

    # Assert: 3 of 5 reach the cart (2 lost), then 2 of those 3 buy (1 lost).
    cart, purchase = rows[("all", "cart")], rows[("all", "purchase")]
    assert (cart["sessions"], cart["step_rate"], cart["drop_off"]) == (3, 3 / 5, 2)
    assert purchase["share"] == pytest.approx(2 / 5)
    assert purchase["step_rate"] == pytest.approx(2 / 3)
    assert purchase["drop_off_rate"] == pytest.approx(1 / 3)
    assert rows[("all", "view")]["drop_off"] == 0
    # The app channel never buys: nothing to rate after a stage no session reached.
    assert rows[("app", "purchase")]["step_rate"] == 0.0
    assert len(rows) == 3 * 3


def test_rate_with_no_session_is_nan() -> None:
    rows = Funnel(reached=(0, 0, 0)).as_rows()
    assert math.isnan(rows[1]["step_rate"])


def test_count_vector_layout() -> None:
    # Execute
    counts = funnel_counts(EVENTS, channels=("app", "pc"))

    # Assert: [all | app | pc] x [view, cart, purchase], as documented.
    assert counts.tolist() == [5, 3, 2, 2, 1, 0, 2, 1, 1]


def test_summed_partner_counts_rebuild_the_global_funnel() -> None:
    # Prepare: two partners holding disjoint sessions, agreeing on the channel list.
    channels = ("app", "pc", "social")
    first = EVENTS[EVENTS["session_id"].isin(["s1", "s3"])]
    second = EVENTS[~EVENTS["session_id"].isin(["s1", "s3"])]

    # Execute
    summed = funnel_counts(first, channels) + funnel_counts(second, channels)

    # Assert
    assert Funnel.from_counts(summed, channels) == funnel(EVENTS, channels)


def test_to_dict_names_stages_per_segment() -> None:
    assert funnel(EVENTS).to_dict() == {
        "stages": ["view", "cart", "purchase"],
        "segments": {
            "all": {"view": 5, "cart": 3, "purchase": 2},
            "app": {"view": 2, "cart": 1, "purchase": 0},
            "pc": {"view": 2, "cart": 1, "purchase": 1},
        },
    }


def test_a_session_takes_the_channel_of_its_first_known_event() -> None:
    # Prepare: s1 starts with an unknown channel, then app, then pc.
    events = events_of([("s1", V, None), ("s1", V, "app"), ("s1", C, "pc")])

    # Execute / Assert
    assert funnel(events).by_channel == {"app": (1, 1, 0), "pc": (0, 0, 0)}


def test_events_without_sessions_are_refused() -> None:
    events = EVENTS.copy()
    events.loc[0, "session_id"] = None
    with pytest.raises(ValueError, match="session_id must be filled"):
        funnel_counts(events)


def test_counts_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(ValueError, match=r"counts must have shape \(6,\) for 1 channels"):
        Funnel.from_counts(np.zeros(3, dtype=np.int64), channels=("app",))


def test_the_rees46_sample_funnel(shared_data: Path) -> None:
    # Prepare: the raw file, read apart from the loader, for the cart stage.
    path = shared_data / "rees46-multicategory-sample" / "2019-Oct-head.csv"
    raw = pd.read_csv(path, usecols=["event_type", "user_session"])
    past_view = raw.loc[raw["event_type"].isin(["cart", "purchase"]), "user_session"].nunique()

    # Execute
    result = funnel(load_events(path).events)

    # Assert: the README's 1,906 sessions, of which 50 contain a purchase.
    assert result.reached == (1906, past_view, 50)
    assert result.by_channel == {}


def test_the_diginetica_sample_has_views_only(shared_data: Path) -> None:
    # Execute
    path = shared_data / "diginetica-sample" / "sample_train-item-views.csv"
    result = funnel(load_events(path).events)

    # Assert: the README's 2,986 sessions; the log has no carts nor purchases.
    assert result.reached == (2986, 0, 0)


def test_conversion_sums_read_each_session_at_its_first_event() -> None:
    # Prepare: three sessions of 2, 1 and 3 events; the second buys at once, the third later
    cases = expand_prefixes(
        [session("a", [0, 1]), session("b", [2], [2]), session("c", [0, 1, 2], [0, 1, 2])]
    )
    prob = np.array([0.1, 0.9, 0.5, 0.3, 0.8, 0.8])  # one per case; first cases: 0, 2, 3

    # Execute
    sums = conversion_sums(prob, cases)
    check = ConversionCheck.from_sums(sums)

    # Assert: 3 sessions, 2 converted, expected 0.1 + 0.5 + 0.3 = 0.9 on arrival
    assert sums == pytest.approx([3, 2, 0.9])
    assert check.row() == pytest.approx(
        {
            "sessions": 3,
            "actual_conversions": 2,
            "predicted_conversions": 0.9,
            "actual_rate": 2 / 3,
            "predicted_rate": 0.3,
        }
    )
