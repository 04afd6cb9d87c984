"""Micro-batching of /predict: concurrent requests share one model call.

A neural model's forward pass costs nearly the same for one prefix as for a few dozen (the
per-call overhead of torch dominates at this size), so under load the service answers more
requests per core when the requests that arrive together are scored together. ``MicroBatcher``
stands in for the served model: each request's thread calls ``predict`` with its one case as
before; the first caller to find no batch running becomes the leader, takes every case waiting
(up to ``max_batch``), runs the model once and hands each caller its rows. Nothing waits on a
timer: a lone request is scored at once, alone, and batches form only from requests that arrive
while a model call is running, so batching adds no latency when there is no queue.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np

from fedpath.data.containers import Cases
from fedpath.models.base import NextStepModel, Predictions


class _Slot:
    """One caller's cases and, once scored, its predictions (or the batch's failure)."""

    def __init__(self, cases: Cases) -> None:
        self.cases = cases
        self.result: Predictions | None = None
        self.error: BaseException | None = None
        self.done = False


class MicroBatcher:
    """A model whose ``predict`` batches concurrent calls; anything else is the model's."""

    def __init__(self, model: NextStepModel, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch!r}")
        self.model = model
        self.max_batch = max_batch
        self.batches = 0  # model calls made (a test and a curious operator can compare)
        self._waiting: list[_Slot] = []
        self._running = False
        self._cond = threading.Condition()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def predict(self, cases: Cases) -> Predictions:
        slot = _Slot(cases)
        with self._cond:
            self._waiting.append(slot)
            while not slot.done and self._running:
                self._cond.wait()
            if slot.done:
                return _outcome(slot)
            self._running = True  # this caller leads the next batch, its own slot in it
            batch, self._waiting = _take(self._waiting, slot, self.max_batch)
        try:
            self._score(batch)
        finally:
            with self._cond:
                self._running = False
                self._cond.notify_all()
        return _outcome(slot)

    def _score(self, batch: list[_Slot]) -> None:
        try:
            predictions = self.model.predict(_concat([s.cases for s in batch]))
        except BaseException as error:  # every caller of the batch sees the failure
            for s in batch:
                s.error, s.done = error, True
            return
        self.batches += 1
        start = 0
        for s in batch:
            stop = start + len(s.cases)
            s.result, s.done = _rows(predictions, start, stop), True
            start = stop


def _take(waiting: list[_Slot], own: _Slot, limit: int) -> tuple[list[_Slot], list[_Slot]]:
    """The leader's batch (its own slot first, then the oldest waiting) and what remains."""
    others = [s for s in waiting if s is not own]
    return [own, *others[: limit - 1]], others[limit - 1 :]


def _outcome(slot: _Slot) -> Predictions:
    if slot.error is not None:
        raise slot.error
    assert slot.result is not None
    return slot.result


def _concat(parts: list[Cases]) -> Cases:
    if len(parts) == 1:
        return parts[0]
    return Cases(
        **{
            f.name: np.concatenate([getattr(p, f.name) for p in parts])
            for f in dataclasses.fields(Cases)
        }
    )


def _rows(predictions: Predictions, start: int, stop: int) -> Predictions:
    """Rows ``start:stop`` of every per-case array of ``predictions`` (anything else, such as
    a setting of the model's, is the same for every row and kept)."""
    n = len(predictions.action_probs)
    return dataclasses.replace(
        predictions,
        **{
            f.name: value[start:stop]
            for f in dataclasses.fields(predictions)
            if f.init
            and isinstance(value := getattr(predictions, f.name), np.ndarray)
            and value.shape[:1] == (n,)
        },
    )
