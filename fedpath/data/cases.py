"""Cut sessions into prediction cases: every prefix of a path, and the step that followed it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedpath.data.containers import PAD, Cases, Session
from fedpath.schema import Action

UNKNOWN = -1  # label of a step the log does not show (the exit of a censored session)


def expand_prefixes(sessions: Sequence[Session], *, max_len: int = 50) -> Cases:
    """All ``sum(len(s))`` cases of ``sessions``, in session order then prefix length.

    Works on the concatenated sessions at once and fills the prefix matrix one column at a time,
    so memory beyond the result stays at a few ``[n]`` vectors and a million sessions take
    seconds. A prefix longer than ``max_len`` keeps its last ``max_len`` items, because the most
    recent steps carry the most signal about the next one.
    """
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be an int >= 1, got {max_len!r}")
    lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
    if (lengths < 1).any():
        first = int(np.flatnonzero(lengths < 1)[0])
        raise ValueError(f"sessions must have at least one event, got an empty one at {first}")
    n = int(lengths.sum())
    items = _concat([s.items for s in sessions], np.int64)  # [n]
    actions = _concat([s.actions for s in sessions], np.int8)  # [n]

    session_index = np.repeat(np.arange(len(sessions), dtype=np.int64), lengths)
    first_event = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(n, dtype=np.int64) - first_event  # 0-based index of the prefix's end
    prefix_len = np.minimum(position + 1, max_len)
    begin = position + 1 - prefix_len + first_event  # first flat index the prefix keeps

    prefixes = np.full((n, max_len), PAD, dtype=np.int64)
    prefix_actions = np.full((n, max_len), PAD, dtype=np.int8)
    for column in range(max_len):
        rows = np.flatnonzero(prefix_len > column)
        prefixes[rows, column] = items[begin[rows] + column]
        prefix_actions[rows, column] = actions[begin[rows] + column]

    is_last = position == lengths[session_index] - 1
    following = np.minimum(np.arange(n) + 1, max(n - 1, 0))
    censored = np.fromiter((s.censored for s in sessions), dtype=bool, count=len(sessions))
    exit_label = np.where(censored, UNKNOWN, int(Action.EXIT)).astype(np.int8)
    purchases = np.bincount(
        session_index, weights=actions == Action.PURCHASE, minlength=len(lengths)
    )
    return Cases(
        prefixes=prefixes,
        prefix_actions=prefix_actions,
        lengths=prefix_len,
        next_item=np.where(is_last, UNKNOWN, items[following]).astype(np.int64),
        next_action=np.where(is_last, exit_label[session_index], actions[following]).astype(
            np.int8
        ),
        converts=(purchases > 0)[session_index],
        session_index=session_index,
    )


def _concat(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.empty(0, dtype)
