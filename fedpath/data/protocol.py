"""The benchmark protocol: from a canonical events table to train / valid / test sessions.

It follows ../shared/notes/evaluation-protocol.md step for step, so that fedpath's figures sit
beside the peer's (RecBole 1.2.1) on exactly the same sessions; on the two shared samples it
yields the note's sizes (Diginetica 688/56/121 sessions and 1,169 items, REES46 201/22/54 and
232). Steps and the choices the note leaves open:

1. Sessions: the log's ids, else per user an inactivity gap (``sessionize``). Events are ordered
   by time inside a session; ties keep file order. With ``item_buckets`` set, item ids are first
   replaced by keyed buckets (``fedpath.data.hashing``), so every later step, vocabulary
   included, runs in the hashed item space the partners share.
2. Until nothing changes: collapse consecutive duplicate items, drop items seen fewer than
   ``min_item_count`` times in the whole log, drop sessions shorter than ``min_session_length``.
   A collapsed run keeps the time of its first event and its *strongest* action
   (purchase > cart > view): "viewed A, carted A" is one step on A that ended in the cart, and
   keeping the view would erase the very conversions the action and conversion heads learn.
3. Sessions are sorted by start time, ties by session key (as text). The start is the session's
   first event *as logged*, before step 2 drops anything: a visit begins when the shopper
   arrives, whichever of its clicks the filters later remove (and this is the order that gives
   the note's sizes). The last ``test_fraction`` (rounded half up) are test, the
   ``valid_fraction`` before them valid, the rest train.
4. Valid and test lose the events whose item is not a train item, are collapsed again (same
   rule) and lose the sessions left shorter than ``min_session_length``. The vocabulary is the
   train items in order of first appearance in train; sessions stay in split order.
   A split left empty (too few sessions for its fraction, as in a log of one huge session,
   which is never cut; or held-out sessions all lost in step 4) is not an error, but
   ``SplitDataset.warnings`` says which and why: its metrics are n/a.

Censoring. A log cut out of a longer stream by a time window (REES46's monthly files, and the
shared head sample that ends after 2.5 hours) stops sessions mid-visit: for a session whose last
logged event is within ``censor_window_minutes`` of the log's last timestamp, the next step after
its last event is unknown, so it is marked ``censored`` and its exit case gets label -1 instead
of EXIT. Its item cases are real and are kept. Set ``censor_window_minutes=None`` for logs made of
complete sessions: Diginetica (CIKM Cup 2016) releases whole sessions and its clock is a date
plus an offset inside the session, so its "last timestamp" is not a moment at which a visit could
have been cut; the default window would wrongly censor every session of its last day.

Pre-split logs. When the events carry their ``split`` (the ``presplit`` format: a published
benchmark split such as Diginetica's, prepared by SR-GNN), the file's split is the protocol and
steps 2-4 do not run: nothing is filtered, collapsed or dropped, so the test cases are exactly
the file's. Valid sessions are the log's own, else the last ``valid_fraction`` of its train
sessions (by start, ties in file order; in a log without a clock, the last in the file), held
out of train. The vocabulary is every item of the log, first appearance in split order.

Each session also carries the most frequent non-null ``channel`` / ``category`` / ``source`` of
its logged events (ties: the earliest), which natural partitioning groups partners by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np
import pandas as pd

from fedpath.data.containers import Session, SplitDataset
from fedpath.data.hashing import ItemHasher, hash_items, read_item_key
from fedpath.data.sessionize import MS_PER_MINUTE, sessionize
from fedpath.errors import ConfigError, DataFormatError
from fedpath.schema import SPLIT_COLUMN, SPLITS

SESSION_LABELS = ("channel", "category", "source")


@dataclass(frozen=True)
class ProtocolConfig:
    """Every knob of the benchmark protocol; the defaults are the note's protocol.

    ``item_buckets`` with ``item_key_path`` (a file holding the partners' secret key, read as raw
    bytes, at least 16 of them) runs the protocol in the hashed item space.
    """

    min_item_count: int = 2
    min_session_length: int = 2
    valid_fraction: float = 0.1
    test_fraction: float = 0.2
    max_prefix_length: int = 50
    gap_minutes: float = 30.0
    censor_window_minutes: float | None = 30.0
    item_buckets: int | None = None
    item_key_path: Path | None = None  # text (as Hydra gives it) is turned into a Path

    def __post_init__(self) -> None:
        _require_int("min_item_count", self.min_item_count, minimum=1)
        _require_int("min_session_length", self.min_session_length, minimum=1)
        _require_int("max_prefix_length", self.max_prefix_length, minimum=1)
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if not _is_real(value) or not 0 <= value < 1:
                raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
        if self.valid_fraction + self.test_fraction >= 1:
            raise ConfigError(
                "valid_fraction + test_fraction must be < 1 to leave train sessions, got "
                f"{self.valid_fraction} + {self.test_fraction}"
            )
        if not _is_real(self.gap_minutes) or not self.gap_minutes > 0:
            raise ConfigError(f"gap_minutes must be a number > 0, got {self.gap_minutes!r}")
        window = self.censor_window_minutes
        if window is not None and (not _is_real(window) or not window >= 0):
            raise ConfigError(f"censor_window_minutes must be None or >= 0, got {window!r}")
        if self.item_buckets is not None:
            _require_int("item_buckets", self.item_buckets, minimum=1)
        if (self.item_buckets is None) != (self.item_key_path is None):
            raise ConfigError(
                "item_buckets and item_key_path must be set together, got "
                f"item_buckets={self.item_buckets!r}, item_key_path={self.item_key_path!r}"
            )
        if self.item_key_path is not None:
            object.__setattr__(self, "item_key_path", Path(self.item_key_path))


def apply_protocol(events: pd.DataFrame, config: ProtocolConfig | None = None) -> SplitDataset:
    """Split a canonical events table into sessions over the train vocabulary (module doc)."""
    config = config or ProtocolConfig()
    events = sessionize(events, gap_minutes=config.gap_minutes)
    if config.item_buckets is not None:
        key = read_item_key(config.item_key_path)  # type: ignore[arg-type]
        events = hash_items(events, ItemHasher(key, config.item_buckets))
    if events["item_id"].isna().any():
        first = int(np.flatnonzero(events["item_id"].isna().to_numpy())[0])
        raise ValueError(
            f"item_id must be present on every event, got a missing one at row {first}"
        )

    log = _Log.of(events, config)
    if log.given is not None:
        return _apply_given_split(log, config)
    kept = _filter_to_fixed_point(log.paths, config)
    keys, about, item_ids = log.keys, log.about, log.item_ids
    ranked, n_train, n_valid = _rank_sessions(kept, about.start, keys, config)
    train = ranked.take(ranked.rank < n_train)
    vocab_codes = pd.unique(train.item)
    index_of = np.full(len(item_ids), -1, dtype=np.int64)
    index_of[vocab_codes] = np.arange(len(vocab_codes))

    parts = {"train": train}
    for name, in_split in (
        ("valid", (ranked.rank >= n_train) & (ranked.rank < n_train + n_valid)),
        ("test", ranked.rank >= n_train + n_valid),
    ):
        held_out = ranked.take(in_split & (index_of[ranked.item] >= 0))
        parts[name] = _drop_short_sessions(_collapse(held_out), config.min_session_length)
    sessions = {name: _sessions(part, index_of, keys, about) for name, part in parts.items()}
    n_ranked = len(ranked.heads())
    assigned = {"valid": n_valid, "test": n_ranked - n_train - n_valid}
    return SplitDataset(
        **sessions,
        vocab=item_ids.astype(str).to_numpy(dtype=object)[vocab_codes].tolist(),
        stats=_stats(sessions, len(vocab_codes)),
        warnings=_empty_split_warnings(sessions, assigned, n_ranked, config),
    )


def _apply_given_split(log: _Log, config: ProtocolConfig) -> SplitDataset:
    """The log's own split, nothing filtered (module doc, "Pre-split logs")."""
    given = log.given.copy()  # type: ignore[union-attr]
    if not (given == "valid").any():
        train = np.flatnonzero(given == "train")
        latest = train[np.lexsort((train, log.about.start[train]))]
        n_valid = _round_half_up(config.valid_fraction * len(train))
        given[latest[len(latest) - n_valid :]] = "valid"
    split_index = pd.Series(given).map({name: i for i, name in enumerate(SPLITS)}).to_numpy()
    if not (split_index == 0).any():
        raise ConfigError("a pre-split log must give at least one train session, got none")
    codes = np.arange(len(given))
    rank = np.empty(len(given), dtype=np.int64)
    rank[np.lexsort((codes, log.about.start, split_index))] = codes
    rows = np.argsort(rank[log.paths.session], kind="stable")
    ranked = log.paths.take(rows)
    vocab_codes = pd.unique(ranked.item)
    index_of = np.full(len(log.item_ids), -1, dtype=np.int64)
    index_of[vocab_codes] = np.arange(len(vocab_codes))
    sessions = {
        name: _sessions(
            ranked.take(split_index[ranked.session] == i), index_of, log.keys, log.about
        )
        for i, name in enumerate(SPLITS)
    }
    return SplitDataset(
        **sessions,
        vocab=log.item_ids.astype(str).to_numpy(dtype=object)[vocab_codes].tolist(),
        stats=_stats(sessions, len(vocab_codes)),
        warnings=tuple(
            f"the {name} split is empty, so its metrics are n/a: the log gives no {name} "
            "session" + (f" (valid_fraction={config.valid_fraction})" if name == "valid" else "")
            for name in ("valid", "test")
            if not sessions[name] and not (name == "valid" and config.valid_fraction == 0)
        ),
    )


def _empty_split_warnings(
    sessions: dict[str, list[Session]],
    assigned: dict[str, int],
    n_ranked: int,
    config: ProtocolConfig,
) -> tuple[str, ...]:
    """One line per empty held-out split saying why (train is never empty: _rank_sessions
    refuses a split without train sessions; a fraction of 0 means an empty split is wanted)."""
    warnings = []
    for name, fraction in (("valid", config.valid_fraction), ("test", config.test_fraction)):
        if sessions[name] or fraction == 0:
            continue
        if assigned[name] == 0:
            why = (
                f"{n_ranked} session(s) passed the filters and {name}_fraction={fraction} of "
                "them rounds to 0 (sessions are never cut: a log of one huge session has "
                "nothing to hold out; use a log of more sessions)"
            )
        else:
            why = (
                f"its {assigned[name]} session(s) fell below min_session_length="
                f"{config.min_session_length} once items unseen in train were dropped"
            )
        warnings.append(f"the {name} split is empty, so its metrics are n/a: {why}")
    return tuple(warnings)


@dataclass(frozen=True)
class _Paths:
    """Events as parallel arrays, grouped by session and in time order inside each session."""

    session: np.ndarray  # [n] int64 session code
    item: np.ndarray  # [n] int64 item code
    action: np.ndarray  # [n] int8
    rank: np.ndarray | None = None  # [n] int64 position of the session in split order

    def take(self, rows: np.ndarray) -> _Paths:
        rank = None if self.rank is None else self.rank[rows]
        return _Paths(self.session[rows], self.item[rows], self.action[rows], rank)

    def heads(self) -> np.ndarray:
        """Row of each session's first event."""
        return np.flatnonzero(np.diff(self.session, prepend=-1) != 0)


@dataclass(frozen=True)
class _Log:
    """A log's events grouped by session (session codes in file order), time order inside."""

    paths: _Paths
    about: _SessionFacts
    keys: np.ndarray  # [S] object: session key by session code
    item_ids: pd.Index  # item id by item code
    given: np.ndarray | None  # [S] object: the split a pre-split log gives each session

    @staticmethod
    def of(events: pd.DataFrame, config: ProtocolConfig) -> _Log:
        session_codes, session_ids = pd.factorize(events["session_id"])
        keys = session_ids.astype(str).to_numpy(dtype=object)
        item_codes, item_ids = pd.factorize(events["item_id"])
        stamps = events["timestamp"].to_numpy(dtype=np.int64)
        order = np.lexsort((np.arange(len(events)), stamps, session_codes))
        paths = _Paths(
            session_codes[order], item_codes[order], events["action"].to_numpy(np.int8)[order]
        )
        labels = {name: events[name].to_numpy(dtype=object)[order] for name in SESSION_LABELS}
        about = _SessionFacts.of(paths.session, stamps[order], labels, config)
        given = None
        if SPLIT_COLUMN in events:
            split = events[SPLIT_COLUMN].to_numpy(dtype=object)[order]  # [n] by event
            given = split[paths.heads()]
            mixed = np.flatnonzero(split != given[paths.session])
            if len(mixed):
                row = mixed[0]
                raise DataFormatError(
                    f"session {keys[paths.session[row]]!r} must lie in one split, got "
                    f"{given[paths.session[row]]!r} and {split[row]!r}"
                )
        return _Log(paths, about, keys, item_ids, given)


@dataclass(frozen=True)
class _SessionFacts:
    """What the protocol keeps about each logged session (by session code) before filtering."""

    start: np.ndarray  # [S] int64 ms of the first logged event
    censored: np.ndarray  # [S] bool
    labels: dict[str, np.ndarray]  # channel/category/source -> [S] object

    @staticmethod
    def of(
        session: np.ndarray,
        stamps: np.ndarray,
        labels: dict[str, np.ndarray],
        config: ProtocolConfig,
    ) -> _SessionFacts:
        heads = np.flatnonzero(np.diff(session, prepend=-1) != 0)
        last = np.append(heads[1:], len(session)) - 1
        censored = np.zeros(len(heads), dtype=bool)
        if config.censor_window_minutes is not None and len(stamps):
            cut = stamps.max() - config.censor_window_minutes * MS_PER_MINUTE
            censored = stamps[last] >= cut
        modes = {name: _session_mode(v, session, len(heads)) for name, v in labels.items()}
        return _SessionFacts(start=stamps[heads], censored=censored, labels=modes)


def _session_mode(values: np.ndarray, session: np.ndarray, n_sessions: int) -> np.ndarray:
    """Most frequent non-null value of each session (ties: the earliest), else None."""
    frame = pd.DataFrame({"session": session, "value": values, "row": np.arange(len(values))})
    tally = (
        frame[frame["value"].notna()]
        .groupby(["session", "value"], sort=False)
        .agg(count=("row", "size"), first=("row", "min"))
        .reset_index()
        .sort_values(["session", "count", "first"], ascending=[True, False, True])
        .drop_duplicates("session")
    )
    out = np.full(n_sessions, None, dtype=object)
    out[tally["session"].to_numpy()] = tally["value"].to_numpy(dtype=object)
    return out


def _collapse(paths: _Paths) -> _Paths:
    """Merge runs of one item inside a session into their first event, with the run's strongest
    action (Action values grow view < cart < purchase, so the strongest is the maximum)."""
    repeat = np.zeros(len(paths.session), dtype=bool)
    repeat[1:] = (paths.session[1:] == paths.session[:-1]) & (paths.item[1:] == paths.item[:-1])
    if not repeat.any():
        return paths
    heads = np.flatnonzero(~repeat)
    merged = paths.take(heads)
    return _Paths(
        merged.session, merged.item, np.maximum.reduceat(paths.action, heads), merged.rank
    )


def _drop_short_sessions(paths: _Paths, min_length: int) -> _Paths:
    return paths.take(np.bincount(paths.session)[paths.session] >= min_length)


def _filter_to_fixed_point(paths: _Paths, config: ProtocolConfig) -> _Paths:
    """Collapse, drop rare items, drop short sessions, again until a pass changes nothing:
    each step can undo another's guarantee (dropping an item can join two equal neighbours or
    shorten a session below the minimum)."""
    while True:
        before = len(paths.session)
        paths = _collapse(paths)
        paths = paths.take(np.bincount(paths.item)[paths.item] >= config.min_item_count)
        paths = _drop_short_sessions(paths, config.min_session_length)
        if len(paths.session) == before:
            return paths


def _rank_sessions(
    paths: _Paths, start: np.ndarray, keys: np.ndarray, config: ProtocolConfig
) -> tuple[_Paths, int, int]:
    """Rows reordered into split order, each tagged with its session's rank; train/valid sizes."""
    kept = paths.session[paths.heads()]
    if len(kept) == 0:
        raise ConfigError(
            "events must keep at least one session after the filters "
            f"(min_item_count={config.min_item_count}, "
            f"min_session_length={config.min_session_length}), got 0: lower them or give a "
            "log of more sessions"
        )
    ranking = pd.DataFrame({"start": start[kept], "key": keys[kept]})
    ordered = kept[ranking.sort_values(["start", "key"], kind="stable").index.to_numpy()]
    rank = np.empty(len(start), dtype=np.int64)
    rank[ordered] = np.arange(len(ordered))
    rows = np.argsort(rank[paths.session], kind="stable")
    ranked = _Paths(
        paths.session[rows], paths.item[rows], paths.action[rows], rank[paths.session[rows]]
    )

    n_test = _round_half_up(config.test_fraction * len(ordered))
    n_valid = _round_half_up(config.valid_fraction * len(ordered))
    n_train = len(ordered) - n_test - n_valid
    if n_train < 1:
        raise ConfigError(
            f"the split must leave at least one train session, got {len(ordered)} sessions "
            f"with valid_fraction={config.valid_fraction}, test_fraction={config.test_fraction}"
        )
    return ranked, n_train, n_valid


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def _sessions(
    paths: _Paths, index_of: np.ndarray, keys: np.ndarray, about: _SessionFacts
) -> list[Session]:
    """One Session per run of rows; its arrays are views into the split's arrays."""
    heads = paths.heads()
    bounds = np.append(heads, len(paths.session)).tolist()
    items, actions = index_of[paths.item], paths.action
    codes = paths.session[heads]
    columns = zip(
        keys[codes].tolist(),
        bounds[:-1],
        bounds[1:],
        about.start[codes].tolist(),
        *(about.labels[name][codes].tolist() for name in SESSION_LABELS),
        about.censored[codes].tolist(),
        strict=True,
    )
    return [
        Session(
            key=key,
            items=items[begin:end],
            actions=actions[begin:end],
            start=start,
            channel=channel,
            category=category,
            source=source,
            censored=censored,
        )
        for key, begin, end, start, channel, category, source, censored in columns
    ]


def _stats(sessions: dict[str, list[Session]], n_items: int) -> dict[str, float | int]:
    """Sizes per split: sessions, cases (one per event), item cases (one fewer per session)."""
    stats: dict[str, float | int] = {"items": n_items}
    for name in SPLITS:
        split = sessions[name]
        n_cases = sum(len(s) for s in split)
        stats[f"{name}_sessions"] = len(split)
        stats[f"{name}_cases"] = n_cases
        stats[f"{name}_item_cases"] = n_cases - len(split)
        stats[f"{name}_censored"] = sum(s.censored for s in split)
    return stats


def _require_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)
