"""The shopping funnel of a log: how many sessions reach view, cart and purchase.

A session reaches a stage when its furthest action is at least that stage, so a "buy now"
purchase with no logged cart still passed the cart stage and the funnel never widens downstream.

Federation: each partner computes ``funnel_counts`` over the same agreed ``channels``; the
vectors are plain counts, so a secure SUM of them is the count vector of the union of the logs,
and ``Funnel.from_counts`` rebuilds the global funnel without any partner's sessions leaving it.

Count vector layout (int64, length ``3 * (1 + len(channels))``), row-major ``[segment, stage]``:
segment 0 is every session, segment ``1 + c`` the sessions of ``channels[c]``; stage 0/1/2 is
view/cart/purchase. Sessions of a channel outside ``channels`` (or of unknown channel) count in
segment 0 only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fedpath.data.containers import Cases
from fedpath.schema import Action

STAGES: tuple[Action, ...] = (Action.VIEW, Action.CART, Action.PURCHASE)
STAGE_NAMES: tuple[str, ...] = tuple(stage.name.lower() for stage in STAGES)
ALL_SESSIONS = "all"


def _reached(furthest: np.ndarray) -> np.ndarray:
    """[3] sessions whose furthest action is at least each stage."""
    return np.array([(furthest >= stage).sum() for stage in STAGES], dtype=np.int64)


def _session_channel(events: pd.DataFrame) -> pd.Series:
    """Channel of each session: that of its earliest event with a known channel."""
    known = events[events["channel"].notna()].sort_values("timestamp", kind="stable")
    return known.groupby("session_id", sort=False)["channel"].first()


def funnel_counts(events: pd.DataFrame, channels: Sequence[str] = ()) -> np.ndarray:
    """The funnel of a canonical events table as an additive count vector (layout above)."""
    missing = int(events["session_id"].isna().sum())
    if missing:
        raise ValueError(
            f"events.session_id must be filled (sessionize first), got {missing} empty"
        )
    furthest = events.groupby("session_id", sort=False)["action"].max()  # [sessions]
    channel = _session_channel(events).reindex(furthest.index)
    return path_funnel_counts(furthest.to_numpy(), channel.to_numpy(), channels)


def path_funnel_counts(
    furthest: np.ndarray, session_channels: Sequence[str | None], channels: Sequence[str] = ()
) -> np.ndarray:
    """The same count vector from each session's furthest action and channel.

    A federated partner keeps sessions, not the events table; this lets it count its funnel
    from what it holds, in the very layout every other partner and ``Funnel.from_counts`` use.
    """
    if len(set(channels)) != len(channels):
        raise ValueError(f"channels must be distinct, got {list(channels)}")
    furthest = np.asarray(furthest)
    session_channels = np.asarray(session_channels, dtype=object)
    if session_channels.shape != furthest.shape:
        raise ValueError(
            f"session_channels must have one entry per session ({furthest.shape[0]}), "
            f"got {session_channels.shape[0]}"
        )
    counts = np.zeros((1 + len(channels), len(STAGES)), dtype=np.int64)
    counts[0] = _reached(furthest)
    for row, name in enumerate(channels, start=1):
        counts[row] = _reached(furthest[session_channels == name])
    return counts.ravel()


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


@dataclass(frozen=True)
class Funnel:
    """Sessions reaching each stage, overall and per channel."""

    reached: tuple[int, ...]  # [3] sessions reaching view, cart, purchase
    by_channel: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @classmethod
    def from_counts(cls, counts: np.ndarray, channels: Sequence[str] = ()) -> Funnel:
        """Rebuild a funnel from a (possibly securely summed) ``funnel_counts`` vector."""
        counts = np.asarray(counts)
        expected = len(STAGES) * (1 + len(channels))
        if counts.shape != (expected,):
            raise ValueError(
                f"counts must have shape ({expected},) for {len(channels)} channels, "
                f"got {counts.shape}"
            )
        rows = [tuple(int(v) for v in row) for row in counts.reshape(-1, len(STAGES))]
        return cls(reached=rows[0], by_channel=dict(zip(channels, rows[1:], strict=True)))

    @property
    def segments(self) -> dict[str, tuple[int, ...]]:
        """Every segment's counts, ``"all"`` first."""
        return {ALL_SESSIONS: self.reached, **self.by_channel}

    def as_rows(self) -> list[dict[str, str | int | float]]:
        """One row per segment and stage, ready for a table.

        ``share``: of the segment's sessions, how many reached the stage; ``step_rate``: of
        those that reached the previous stage; ``drop_off``: sessions lost since the previous
        stage (0 at view); rates are NaN when their denominator is 0.
        """
        rows: list[dict[str, str | int | float]] = []
        for segment, reached in self.segments.items():
            for index, stage in enumerate(STAGE_NAMES):
                previous = reached[index - 1] if index else reached[0]
                rows.append(
                    {
                        "segment": segment,
                        "stage": stage,
                        "sessions": reached[index],
                        "share": _ratio(reached[index], reached[0]),
                        "step_rate": _ratio(reached[index], previous),
                        "drop_off": previous - reached[index],
                        "drop_off_rate": _ratio(previous - reached[index], previous),
                    }
                )
        return rows

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form: stage names and each segment's reached counts."""
        return {
            "stages": list(STAGE_NAMES),
            "segments": {
                name: dict(zip(STAGE_NAMES, r, strict=True)) for name, r in self.segments.items()
            },
        }


def funnel(events: pd.DataFrame, channels: Sequence[str] | None = None) -> Funnel:
    """The funnel of ``events``, per channel over ``channels`` (default: every known channel)."""
    if channels is None:
        channels = sorted(events["channel"].dropna().unique())
    return Funnel.from_counts(funnel_counts(events, channels), channels)


def first_cases(cases: Cases) -> np.ndarray:
    """[sessions] index of each session's first case (its one-event prefix)."""
    index = np.asarray(cases.session_index)
    return np.flatnonzero(np.r_[True, index[1:] != index[:-1]]) if len(index) else index


def conversion_sums(convert_prob: np.ndarray, cases: Cases) -> np.ndarray:
    """[3] sessions, sessions that converted, and the sum of their predicted conversion
    probability on arrival (at each session's first event): additive, like the funnel counts.

    The forecast on arrival is what a merchant plans a day with (expected buyers among the
    sessions that come in); the actual conversions are the funnel's purchase stage of the same
    sessions, so the two compare directly.
    """
    first = first_cases(cases)
    return np.array(
        [
            len(first),
            float(np.asarray(cases.converts, dtype=bool)[first].sum()),
            float(np.asarray(convert_prob, dtype=np.float64)[first].sum()),
        ]
    )


@dataclass(frozen=True)
class ConversionCheck:
    """Predicted vs actual conversion of a set of (held-out) sessions, from ``conversion_sums``."""

    sessions: int
    actual: int
    predicted: float  # expected converting sessions: the sum of predicted probabilities

    @classmethod
    def from_sums(cls, sums: np.ndarray) -> ConversionCheck:
        sessions, actual, predicted = (float(v) for v in np.asarray(sums).ravel())
        return cls(sessions=round(sessions), actual=round(actual), predicted=predicted)

    def row(self) -> dict[str, int | float]:
        """Counts and rates for a table; rates are NaN without sessions."""
        return {
            "sessions": self.sessions,
            "actual_conversions": self.actual,
            "predicted_conversions": self.predicted,
            "actual_rate": _ratio(self.actual, self.sessions),
            "predicted_rate": _ratio(self.predicted, self.sessions),
        }
