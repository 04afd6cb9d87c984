"""Cut a user's event stream into sessions where the log itself has none.

Logs such as Taobao's or RetailRocket's know the shopper but not the visit. The usual cut, and the
one the benchmark protocol names, is an inactivity gap: a new session starts when a user has been
idle for longer than ``gap_minutes``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MS_PER_MINUTE = 60_000


def sessionize(events: pd.DataFrame, *, gap_minutes: float = 30) -> pd.DataFrame:
    """Fill the missing ``session_id`` values of a canonical events table.

    Rows that already carry a session id keep it: a log's own sessions are the truth. The other
    rows are cut per user at every gap strictly longer than ``gap_minutes`` and get the id
    ``f"{user_id}:{n}"``, n counting that user's sessions from 0 in time order (ties in file
    order), so the same log always yields the same ids. Row order is kept; when nothing is
    missing the table is returned as it came.
    """
    if not gap_minutes > 0:
        raise ValueError(f"gap_minutes must be > 0, got {gap_minutes!r}")
    missing = events["session_id"].isna().to_numpy()
    if not missing.any():
        return events
    rows = np.flatnonzero(missing)
    users = events["user_id"].to_numpy(dtype=object)[rows]
    anonymous = pd.isna(users)
    if anonymous.any():
        raise ValueError(
            "events without a session_id must have a user_id to be sessionized, got "
            f"{int(anonymous.sum())} rows with neither (first at row {int(rows[anonymous][0])})"
        )
    user_codes, _ = pd.factorize(users)
    stamps = events["timestamp"].to_numpy(dtype=np.int64)[rows]
    order = np.lexsort((rows, stamps, user_codes))
    user_codes, stamps = user_codes[order], stamps[order]

    first_of_user = np.ones(len(order), dtype=bool)
    first_of_user[1:] = user_codes[1:] != user_codes[:-1]
    starts = first_of_user.copy()
    starts[1:] |= np.diff(stamps) > gap_minutes * MS_PER_MINUTE
    counter = np.cumsum(starts)
    # number of the session within its user: global counter minus the counter at the user's start
    number = counter - np.maximum.accumulate(np.where(first_of_user, counter, 0))

    ids = pd.Series(users[order], dtype=object).astype(str) + ":" + pd.Series(number).astype(str)
    session_ids = events["session_id"].to_numpy(dtype=object, copy=True)
    session_ids[rows[order]] = ids.to_numpy(dtype=object)
    return events.assign(session_id=session_ids)
