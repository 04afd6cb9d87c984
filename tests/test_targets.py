"""The merchant's labels: a purchase still ahead of a prefix, and an exit next."""

from __future__ import annotations

import pytest
from session_data import session

from fedpath.data.cases import expand_prefixes
from fedpath.targets import conversion_label, exit_next, purchase_ahead


def three_sessions():
    # a: view cart buy view; b: view view; c: view buy buy (censored: its exit is unknown)
    return expand_prefixes(
        [
            session("a", [0, 1, 2, 3], [0, 1, 2, 0]),
            session("b", [0, 1]),
            session("c", [0, 1, 2], [0, 2, 2], censored=True),
        ]
    )


def test_purchase_ahead_is_true_only_before_the_last_purchase() -> None:
    # Prepare
    cases = three_sessions()

    # Execute
    ahead = purchase_ahead(cases)

    # Assert: a's third prefix already holds the purchase, nothing is bought after it
    assert ahead.tolist() == [True, True, False, False, False, False, True, True, False]
    assert conversion_label(cases, "session").tolist() == [1, 1, 1, 1, 0, 0, 1, 1, 1]


def test_exit_next_marks_a_censored_end_unknown() -> None:
    label, known = exit_next(three_sessions())
    assert label.tolist() == [0, 0, 0, 1, 0, 1, 0, 0, 0]
    assert known.tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 0]


def test_conversion_label_refuses_an_unknown_target() -> None:
    with pytest.raises(ValueError, match="target must be one of"):
        conversion_label(three_sessions(), "later")
