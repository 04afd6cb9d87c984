"""The partner's prediction server over HTTP, its registry pick-up, and drift monitoring."""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from prometheus_samples import samples  # tests/ is on sys.path

from fedpath.clients.drift import DriftMonitor, DriftSettings, psi
from fedpath.clients.serving import ServingSettings, open_service
from fedpath.clients.serving_server import start_server
from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Session
from fedpath.data.hashing import ItemHasher
from fedpath.federation.registry import ModelRegistry
from fedpath.models.calibration import Calibration
from fedpath.models.markov import MarkovChain
from fedpath.models.temperature import Temperatures

N_BUCKETS = 64
KEY = b"partners-shared-item-key-0123456"


@dataclass
class Served:
    url: str
    registry: ModelRegistry
    buckets: dict[str, int]


def markov(buckets: dict[str, int], sessions: list[list[tuple[str, int]]]) -> MarkovChain:
    """A Markov chain counted over ``sessions`` of (raw item, action) in bucket space."""
    paths = [
        Session(
            key=str(i),
            items=np.array([buckets[item] for item, _ in s]),
            actions=np.array([a for _, a in s], dtype=np.int8),
            start=i,
        )
        for i, s in enumerate(sessions)
    ]
    return MarkovChain(n_items=N_BUCKETS).fit(expand_prefixes(paths, max_len=5))


# a -> b three times, a -> c (carted) once: from "a" the next item is b, next action view/exit.
TRAIN = [[("a", 0), ("b", 0)]] * 3 + [[("a", 0), ("c", 1)]]


def call(url: str, body: bytes | None = None, method: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def predict(url: str, payload: object) -> tuple[int, dict]:
    status, text = call(f"{url}/predict", json.dumps(payload).encode())
    return status, json.loads(text)


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    """A service over an empty registry; ``indirect`` parametrization names its decision."""
    hasher = ItemHasher(KEY, N_BUCKETS)
    buckets = {item: hasher.bucket(item) for item in ("a", "b", "c", "d")}
    assert len(set(buckets.values())) == 4  # the hand-made catalogue has no collision
    catalog: list[str | None] = [None] * N_BUCKETS
    for item in ("a", "b", "c"):  # "d" is not the partner's: never recommended
        catalog[buckets[item]] = item
    service = open_service(
        tmp_path / "models",
        model_key=None,
        hasher=hasher,
        catalog=catalog,
        reference=None,
        settings=ServingSettings(
            port=0,
            reload_every=0.0,
            top_k=2,
            max_k=5,
            decision=getattr(request, "param", "exit"),
        ),
        max_len=5,
    )
    server = start_server(service)
    try:
        yield Served(
            f"http://127.0.0.1:{server.server_address[1]}", service.source.registry, buckets
        )
    finally:
        server.shutdown()


def publish(registry: ModelRegistry, model: MarkovChain, round: int) -> int:
    card = registry.register(model, campaign="c1", round=round, config_hash="h", parent=None)
    registry.promote(card.version, {"promoted": True})
    return card.version


def test_health_waits_for_a_promoted_model(served: Served) -> None:
    # Execute
    before = call(f"{served.url}/health")
    card = served.registry.register(
        markov(served.buckets, TRAIN), campaign="c1", round=1, config_hash="h", parent=None
    )
    registered_only = call(f"{served.url}/health")
    served.registry.promote(card.version, {"promoted": True})
    after = call(f"{served.url}/health")

    # Assert
    assert before[0] == registered_only[0] == 503
    assert after[0] == 200
    assert json.loads(after[1]) == {"status": "ok", "model_version": 1}


def test_predict_answers_from_the_promoted_model(served: Served) -> None:
    # Prepare
    publish(served.registry, markov(served.buckets, TRAIN), round=1)

    # Execute
    status, body = predict(served.url, {"items": ["a"], "actions": ["view"]})

    # Assert: counted by hand, a -> b (3) beats a -> c (1); "d" is not in the catalogue
    assert status == 200
    assert [entry["item"] for entry in body["next_items"]] == ["b", "c"]
    assert body["next_items"][0]["bucket"] == served.buckets["b"]
    # from a view: next view 3, cart 1, purchase 0, exit 3, each + 1 (Laplace) over 11
    expected = {"view": 4 / 11, "cart": 2 / 11, "purchase": 1 / 11, "exit": 4 / 11}
    assert body["next_action"] == pytest.approx(expected, abs=1e-6)
    assert body["conversion_probability"] == pytest.approx(1 / 9, abs=1e-6)  # 0 of 7 convert
    # the default decision is exit: "no" (4/11 < 0.5), right with 7/11; this model file has no
    # calibration (as written before models carried one), so the bare review_threshold gates it
    assert (body["decision"], body["answer"]) == ("exit", False)
    assert body["confidence"] == pytest.approx(7 / 11, abs=1e-6)
    assert (body["calibrated"], body["cutoff_certified"]) == (False, False)
    assert body["review_cutoff"] == 0.85
    assert body["needs_review"] is True  # 0.64 < 0.85
    assert body["model_version"] == 1


def test_predict_answers_with_the_calibration_the_model_carries(served: Served) -> None:
    # Prepare: temperatures 2 (probabilities ~ sqrt of the raw ones) and a certified exit cutoff
    model = markov(served.buckets, TRAIN)
    model.calibration = Calibration(
        temperatures=Temperatures(action=2.0, convert=2.0),
        cutoffs={"action": math.inf, "exit": 0.65, "convert": 0.9},
        threshold=0.85,
    )
    publish(served.registry, model, round=1)  # through the registry's model file

    # Execute
    status, body = predict(served.url, {"items": ["a"], "actions": ["view"]})

    # Assert: raw 4/11, 2/11, 1/11, 4/11 at T=2 are 2, sqrt 2, 1, 2 over 5 + sqrt 2
    assert status == 200
    total = 5 + math.sqrt(2)
    expected = {"view": 2 / total, "cart": math.sqrt(2) / total, "purchase": 1 / total}
    assert body["next_action"] == pytest.approx({**expected, "exit": 2 / total}, abs=1e-6)
    # raw 1/9 at T=2: sqrt(1/9) / (sqrt(1/9) + sqrt(8/9)) = 1 / (1 + sqrt 8)
    assert body["conversion_probability"] == pytest.approx(1 / (1 + math.sqrt(8)), abs=1e-6)
    assert (body["calibrated"], body["cutoff_certified"]) == (True, True)
    assert (body["decision"], body["answer"]) == ("exit", False)
    assert body["confidence"] == pytest.approx(1 - 2 / total, abs=1e-6)  # 0.688
    assert body["review_cutoff"] == 0.65
    assert body["needs_review"] is False  # 0.688 >= 0.65, though below review_threshold 0.85


@pytest.mark.parametrize("served", ["items"], indirect=True)
def test_predict_gates_the_list_it_returns_when_the_decision_is_items(served: Served) -> None:
    # Prepare: a cutoff certified for lists of 2 (the service's top_k)
    model = markov(served.buckets, TRAIN)
    model.calibration = Calibration(cutoffs={"items": 0.6}, threshold=0.85, items_k=2)
    publish(served.registry, model, round=1)

    # Execute
    _, listed = predict(served.url, {"items": ["a"], "actions": ["view"]})
    _, shorter = predict(served.url, {"items": ["a"], "actions": ["view"], "k": 1})

    # Assert: from "a" the list [b, c] holds all 4 transitions, over 2 distinct successors
    # (Witten-Bell: 4 / (4 + 2)), certified and handled
    assert (listed["decision"], listed["answer"]) == ("items", ["b", "c"])
    assert listed["confidence"] == pytest.approx(4 / 6)
    assert (listed["review_cutoff"], listed["cutoff_certified"]) == (0.6, True)
    assert listed["needs_review"] is False
    # a list of 1 ([b], 3 / 6) was not certified: the bare threshold gates it
    assert (shorter["answer"], shorter["confidence"]) == (["b"], pytest.approx(0.5))
    assert (shorter["review_cutoff"], shorter["cutoff_certified"]) == (0.85, False)
    assert shorter["needs_review"] is True


def test_a_new_promotion_is_served_without_restart(served: Served) -> None:
    # Prepare: version 2 learnt that a is followed by c
    publish(served.registry, markov(served.buckets, TRAIN), round=1)
    first = predict(served.url, {"items": ["a"], "k": 1})[1]
    flipped = [[("a", 0), ("c", 0)]] * 3 + [[("a", 0), ("b", 0)]]

    # Execute
    publish(served.registry, markov(served.buckets, flipped), round=2)
    second = predict(served.url, {"items": ["a"], "k": 1})[1]

    # Assert
    assert (first["model_version"], first["next_items"][0]["item"]) == (1, "b")
    assert (second["model_version"], second["next_items"][0]["item"]) == (2, "c")


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "body must be JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (json.dumps({"items": []}).encode(), 400, "non-empty list"),
        (json.dumps({"items": ["a"], "k": 0}).encode(), 400, "k must be an int in [1, 5]"),
        (json.dumps({"items": ["a"], "actions": ["buy"]}).encode(), 400, "['buy']"),
        (json.dumps({"items": ["a", "b"], "actions": ["view"]}).encode(), 400, "as long as"),
        (json.dumps({"items": ["a"], "user": "u1"}).encode(), 400, "['user']"),
        (json.dumps({"items": ["x"] * 70_000}).encode(), 413, "at most 65536 bytes"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_reason(
    served: Served, body: bytes, status: int, reason: str
) -> None:
    # Prepare
    publish(served.registry, markov(served.buckets, TRAIN), round=1)

    # Execute
    got_status, text = call(f"{served.url}/predict", body)
    still_up = predict(served.url, {"items": ["a"]})[0]

    # Assert
    assert got_status == status
    assert reason in json.loads(text)["error"]
    assert still_up == 200


def test_wrong_paths_and_methods_are_refused(served: Served) -> None:
    # Execute
    unknown = call(f"{served.url}/nowhere")
    get_predict = call(f"{served.url}/predict")
    no_model = call(f"{served.url}/predict", json.dumps({"items": ["a"]}).encode())

    # Assert
    assert unknown[0] == 404
    assert get_predict[0] == 405
    assert no_model[0] == 503
    assert "no promoted model" in json.loads(no_model[1])["error"]


def test_metrics_count_answers_by_status(served: Served) -> None:
    # Prepare
    publish(served.registry, markov(served.buckets, TRAIN), round=1)
    predict(served.url, {"items": ["a"]})
    predict(served.url, {"items": ["b"]})
    call(f"{served.url}/predict", b"nope")

    # Execute
    status, text = call(f"{served.url}/metrics")

    # Assert
    assert status == 200
    values = samples(text)
    assert values['fedpath_predict_requests_total{code="200"}'] == 2
    assert values['fedpath_predict_requests_total{code="400"}'] == 1
    assert values["fedpath_predict_seconds_count"] == 3
    assert values['fedpath_predict_seconds_bucket{le="+Inf"}'] == 3
    assert values["fedpath_needs_review_total"] == 2
    assert values["fedpath_model_version"] == 1
    assert values["fedpath_model_reloads_total"] == 1
    assert values["fedpath_drift_alert"] == 0


def test_psi_by_hand() -> None:
    # Prepare: shares (0.5, 0.5) -> (0.9, 0.1)
    expected, actual = np.array([50.0, 50.0]), np.array([90.0, 10.0])

    # Execute
    value = psi(expected, actual)

    # Assert: (0.9-0.5) ln(0.9/0.5) + (0.1-0.5) ln(0.1/0.5) = 0.2351 + 0.6438
    assert value == pytest.approx(0.8789, abs=2e-3)
    assert psi(expected, expected) == pytest.approx(0.0, abs=1e-9)


def test_drift_alert_rises_on_a_shift_and_clears_when_it_goes(caplog) -> None:
    # Prepare: reference = confident "view" predictions; live traffic turns to unsure "exit"
    caplog.set_level(logging.INFO, logger="fedpath.clients.drift")
    rng = np.random.default_rng(0)
    confident_view = np.tile([0.9, 0.04, 0.03, 0.03], (400, 1))
    unsure_exit = np.tile([0.3, 0.15, 0.15, 0.4], (400, 1))
    monitor = DriftMonitor(
        confident_view + rng.uniform(0, 0.01, (400, 4)),
        DriftSettings(threshold=0.25, window=100, min_samples=50),
    )

    # Execute
    early = monitor.observe(unsure_exit[:10])
    shifted = monitor.observe(unsure_exit[10:100])
    recovered = monitor.observe(confident_view[:100])

    # Assert
    assert (early.alert, early.samples) == (False, 10)  # too few to judge
    assert shifted.alert
    assert shifted.confidence_psi > 0.25 and shifted.action_psi > 0.25
    assert not recovered.alert
    messages = [r.getMessage() for r in caplog.records]
    assert sum("drift alert:" in m for m in messages) == 1
    assert sum("drift alert cleared" in m for m in messages) == 1


def test_drift_alert_does_not_flicker_at_the_threshold() -> None:
    # Prepare: half confident, half unsure predictions as the reference; windows of 100
    sure, unsure = (
        np.tile([0.9, 0.04, 0.03, 0.03], (100, 1)),
        np.tile([0.3, 0.3, 0.2, 0.2], (100, 1)),
    )
    reference = np.concatenate([sure[:50], unsure[:50]])
    monitor = DriftMonitor(reference, DriftSettings(threshold=0.25, window=100, min_samples=100))

    # Execute: 20 % sure (PSI 0.42), then 28 % sure (PSI 0.21: under the threshold, above
    # 0.8 x threshold), then the reference mix again
    raised = monitor.observe(np.concatenate([sure[:20], unsure[:80]]))
    between = monitor.observe(np.concatenate([sure[:28], unsure[:72]]))
    cleared = monitor.observe(reference)

    # Assert
    assert raised.alert and raised.confidence_psi > 0.25
    assert 0.2 < between.confidence_psi <= 0.25
    assert between.alert  # still raised: an alert clears below 0.8 x threshold only
    assert not cleared.alert


def test_a_worker_pool_serves_follows_promotions_and_sums_its_metrics(tmp_path: Path) -> None:
    # Prepare: two worker processes on one port, the daemon's SuperNode check failing
    hasher = ItemHasher(KEY, N_BUCKETS)
    buckets = {item: hasher.bucket(item) for item in ("a", "b", "c")}
    catalog: list[str | None] = [None] * N_BUCKETS
    for item, bucket in buckets.items():
        catalog[bucket] = item
    service = open_service(
        tmp_path / "models",
        model_key=None,
        hasher=hasher,
        catalog=catalog,
        reference=None,
        settings=ServingSettings(port=0, reload_every=0.2, workers=2),
        max_len=5,
    )
    registry = service.source.registry
    publish(registry, markov(buckets, TRAIN), round=1)
    service.checks["supernode"] = lambda: (False, {"state": "backoff"})
    server = start_server(service)
    url = f"http://127.0.0.1:{server.server_address[1]}"

    try:
        # Execute: a request per connection (the kernel spreads them over the workers)
        first = [predict(url, {"items": ["a"]}) for _ in range(12)]
        version = publish(registry, markov(buckets, TRAIN[:1]), round=2)
        time.sleep(0.5)  # longer than reload_every: every worker has looked again
        second = [predict(url, {"items": ["a"]}) for _ in range(12)]
        health = json.loads(call(f"{url}/health")[1])
        values = samples(call(f"{url}/metrics")[1])
        alive = [p.is_alive() for p in server.processes]
    finally:
        server.shutdown()

    # Assert
    assert alive == [True, True]
    assert {(status, body["model_version"]) for status, body in first} == {(200, 1)}
    assert {(status, body["model_version"]) for status, body in second} == {(200, version)}
    assert health["status"] == "degraded" and health["supernode"] == {"state": "backoff"}
    assert values['fedpath_predict_requests_total{code="200"}'] == 24  # both workers' counts
    assert values["fedpath_predict_seconds_count"] == 24
    assert values["fedpath_model_version"] == version
    assert not any(p.is_alive() for p in server.processes)
    assert not server.folder.exists()


def test_drift_over_a_sliding_window_is_the_psi_of_its_last_predictions() -> None:
    # Prepare: random predictions, one at a time and in blocks, past the window several times
    rng = np.random.default_rng(1)
    reference, live = rng.dirichlet([1, 1, 1, 1], 300), rng.dirichlet([3, 1, 1, 2], 730)
    monitor = DriftMonitor(reference, DriftSettings(window=200, min_samples=50, bins=8))

    # Execute
    for start in range(0, 730, 73):
        scores = monitor.observe(live[start : start + 73])

    # Assert: the histograms of the last 200 predictions, computed from scratch with numpy
    edges = np.linspace(0.25, 1.0, 9)
    window = live[-200:]

    def counts(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        confidence = np.histogram(np.clip(probs.max(axis=1), 0.25, 1.0), bins=edges)[0]
        return confidence, np.bincount(probs.argmax(axis=1), minlength=4)

    (ref_c, ref_a), (win_c, win_a) = counts(reference), counts(window)
    assert scores.samples == 200
    assert scores.confidence_psi == pytest.approx(psi(ref_c, win_c), rel=1e-9)
    assert scores.action_psi == pytest.approx(psi(ref_a, win_a), rel=1e-9)
