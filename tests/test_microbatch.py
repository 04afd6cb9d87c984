"""Micro-batching: concurrent predictions share model calls, and each caller gets its own rows."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from fedpath.clients.microbatch import MicroBatcher
from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Cases, Session
from fedpath.models.markov import MarkovChain

N_ITEMS = 16


@pytest.fixture(scope="module")
def cases() -> Cases:
    rng = np.random.default_rng(0)
    paths = [
        Session(
            key=str(i),
            items=rng.integers(0, N_ITEMS, 6),
            actions=rng.integers(0, 3, 6).astype(np.int8),
            start=i,
        )
        for i in range(40_000)
    ]
    return expand_prefixes(paths, max_len=5)


def test_a_lone_request_is_scored_at_once_and_alone(cases: Cases) -> None:
    # Prepare
    model = MarkovChain(n_items=N_ITEMS).fit(cases.subset(np.arange(1000)))
    batcher = MicroBatcher(model, max_batch=8)
    one = cases.subset(np.array([3]))

    # Execute
    got = batcher.predict(one)

    # Assert
    assert batcher.batches == 1
    np.testing.assert_array_equal(got.item_scores, model.predict(one).item_scores)


def test_requests_arriving_during_a_model_call_share_the_next_one(cases: Cases) -> None:
    # Prepare: a long call in progress (all the cases), then 12 single-case callers
    model = MarkovChain(n_items=N_ITEMS).fit(cases.subset(np.arange(1000)))
    batcher = MicroBatcher(model, max_batch=8)
    singles = [cases.subset(np.array([i])) for i in range(12)]
    results: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        results[i] = batcher.predict(singles[i]).action_probs

    leader = threading.Thread(target=batcher.predict, args=(cases,))
    followers = [threading.Thread(target=call, args=(i,)) for i in range(12)]

    # Execute
    leader.start()
    while not batcher._running:  # the long call has begun
        time.sleep(0.001)
    for thread in followers:
        thread.start()
    for thread in [leader, *followers]:
        thread.join()

    # Assert: 12 callers in at most 8 per call; each got exactly its own case's rows
    assert 1 + 2 <= batcher.batches <= 1 + 12 - 1
    for i, single in enumerate(singles):
        np.testing.assert_array_equal(results[i], model.predict(single).action_probs)


def test_a_failing_batch_fails_each_of_its_callers_and_the_next_call_works(cases: Cases) -> None:
    # Prepare: a case whose prefix holds an item beyond the model's vocabulary
    model = MarkovChain(n_items=N_ITEMS).fit(cases.subset(np.arange(1000)))
    batcher = MicroBatcher(model, max_batch=8)
    bad = cases.subset(np.array([0]))
    bad.prefixes[0, 0] = 10 * N_ITEMS

    # Execute / Assert
    with pytest.raises(IndexError):
        batcher.predict(bad)
    assert batcher.predict(cases.subset(np.array([1]))).action_probs.shape == (1, 4)
