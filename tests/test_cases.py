"""Prefix expansion: every prefix of every session, truncated on the left, with what came next."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import PAD, Session


def _session(items: list[int], actions: list[int], *, censored: bool = False) -> Session:
    return Session(
        key=str(items),
        items=np.array(items, dtype=np.int64),
        actions=np.array(actions, dtype=np.int8),
        start=0,
        censored=censored,
    )


def test_cases_match_a_hand_expansion() -> None:
    # Prepare: a converting session of 3 and a censored one of 2, prefixes capped at 2 items
    sessions = [_session([5, 6, 7], [0, 1, 2]), _session([8, 9], [0, 0], censored=True)]

    # Execute
    cases = expand_prefixes(sessions, max_len=2)

    # Assert
    np.testing.assert_array_equal(cases.prefixes, [[5, PAD], [5, 6], [6, 7], [8, PAD], [8, 9]])
    np.testing.assert_array_equal(
        cases.prefix_actions, [[0, PAD], [0, 1], [1, 2], [0, PAD], [0, 0]]
    )
    np.testing.assert_array_equal(cases.lengths, [1, 2, 2, 1, 2])
    np.testing.assert_array_equal(cases.next_item, [6, 7, -1, 9, -1])
    np.testing.assert_array_equal(cases.next_action, [1, 2, 3, 0, -1])
    np.testing.assert_array_equal(cases.converts, [True, True, True, False, False])
    np.testing.assert_array_equal(cases.session_index, [0, 0, 0, 1, 1])
    assert cases.prefixes.dtype == np.int64 and cases.next_action.dtype == np.int8


def test_item_cases_are_one_fewer_per_session() -> None:
    # Prepare
    sessions = [_session([1, 2, 3, 4], [0] * 4), _session([5], [0]), _session([6, 7], [0, 0])]

    # Execute
    cases = expand_prefixes(sessions, max_len=50)

    # Assert
    assert len(cases) == 7
    assert len(cases.item_cases) == 4
    assert cases.prefixes.shape == (7, 50)


def test_no_sessions_give_no_cases() -> None:
    # Execute
    cases = expand_prefixes([], max_len=3)

    # Assert
    assert len(cases) == 0
    assert cases.prefixes.shape == (0, 3)


@pytest.mark.parametrize("max_len", [0, -1, 2.5, True])
def test_a_bad_max_len_is_refused(max_len: object) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="max_len must be an int >= 1"):
        expand_prefixes([_session([1], [0])], max_len=max_len)  # type: ignore[arg-type]


def test_an_empty_session_is_refused_with_its_position() -> None:
    # Prepare
    sessions = [_session([1], [0]), _session([], [])]

    # Execute / Assert
    with pytest.raises(ValueError, match="empty one at 1"):
        expand_prefixes(sessions)


@pytest.mark.slow
def test_a_million_sessions_expand_in_seconds() -> None:
    # Prepare: 1M sessions of 1..8 events
    rng = np.random.default_rng(0)
    sessions = [
        _session(list(rng.integers(0, 1000, n)), [0] * n) for n in rng.integers(1, 9, 1_000_000)
    ]

    # Execute
    began = time.perf_counter()
    cases = expand_prefixes(sessions, max_len=50)
    elapsed = time.perf_counter() - began

    # Assert
    assert len(cases) == sum(len(s) for s in sessions)
    assert elapsed < 30, f"expanding 1M sessions took {elapsed:.1f} s"
