"""A partner's local prediction service: ``POST /predict``, ``GET /health``, ``GET /metrics``.

It serves the latest *promoted* model of the partner's registry folder and notices a new
promotion without a restart (it looks at ``promoted.json`` at most once per ``reload_every``
seconds). Requests name raw item ids; they are hashed into the federation's buckets with the
partners' key, so the model never needs the raw catalogue, and the answer names the partner's
own items again through its catalogue (buckets where it has no item are never recommended).

A bad request gets a 4xx with a JSON reason; an unexpected failure is logged and answered 500;
neither stops the server. This module holds what a request means; ``serving_app`` turns it into
HTTP routes and ``serving_server`` serves them with uvicorn.
"""

from __future__ import annotations

import json
import logging
import reprlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np

from fedpath.clients.drift import DriftMonitor, DriftScores, DriftSettings
from fedpath.clients.microbatch import MicroBatcher
from fedpath.clients.serving_metrics import ServingMetrics
from fedpath.data.containers import PAD, Cases
from fedpath.data.hashing import ItemHasher
from fedpath.federation.registry import ModelRegistry
from fedpath.models.base import DEFAULT_REVIEW_THRESHOLD, NextStepModel
from fedpath.review import DECISIONS, decide
from fedpath.schema import ACTION_NAMES, Action

log = logging.getLogger(__name__)

REQUEST_ACTIONS = {name: int(Action[name.upper()]) for name in ("view", "cart", "purchase")}
REFERENCE_CASES = 2000  # held-out cases the drift reference is computed on

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]
"""Something the service depends on but does not run (the partner's SuperNode): healthy or not,
and the details ``/health`` shows under its name."""


@dataclass(frozen=True)
class ServingSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    top_k: int = 20  # items returned when the request does not say (= the items gate's k)
    max_k: int = 100
    max_items: int = 500  # longest prefix accepted in one request
    max_body_bytes: int = 64 * 1024
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD  # the gate of a model with no cutoffs
    decision: str = "exit"  # what the merchant acts on: action | exit | convert | items (review)
    reload_every: float = 1.0  # seconds between looks at the registry's promotion
    read_timeout: float = 10.0  # seconds a client has to send a whole request
    keep_alive: float = 5.0  # seconds an idle keep-alive connection stays open
    backlog: int = 2048  # connections the kernel queues before the server accepts them
    max_connections: int = 1000  # open connections beyond which requests get 503
    workers: int = 1  # processes answering on the port (1: a thread of the daemon's process)
    max_batch: int = 32  # concurrent requests one model call may score together (1: alone)
    drift: DriftSettings = field(default_factory=DriftSettings)

    def __post_init__(self) -> None:
        if not 1 <= self.top_k <= self.max_k:
            raise ValueError(f"top_k must be in [1, max_k={self.max_k}], got {self.top_k!r}")
        if not 0 < self.review_threshold <= 1:
            raise ValueError(f"review_threshold must be in (0, 1], got {self.review_threshold!r}")
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {self.decision!r}")
        positive = ("read_timeout", "keep_alive", "backlog", "max_connections")
        for name in (*positive, "workers", "max_batch"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")


class RequestError(ValueError):
    """A request the server refuses; ``status`` is the 4xx it answers with."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class PredictRequest:
    buckets: np.ndarray  # [n] int64
    actions: np.ndarray  # [n] int8
    k: int


def parse_request(body: bytes, hasher: ItemHasher, settings: ServingSettings) -> PredictRequest:
    """``{"items": [...], "actions": [...]?, "k": int?}`` -> a checked request.

    Whatever the body holds, the answer is a request or a ``RequestError``: values are shown
    through ``reprlib`` (bounded, whatever their size or depth), and JSON that Python refuses
    beyond its grammar (an int past the int-string digit limit: ``ValueError``; deep nesting:
    ``RecursionError``) or that it accepts but cannot encode (a lone surrogate) is malformed too.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError too
        raise RequestError(HTTPStatus.BAD_REQUEST, f"body must be JSON, got {error}") from None
    if not isinstance(data, dict):
        raise RequestError(
            HTTPStatus.BAD_REQUEST, f"body must be a JSON object, got {reprlib.repr(data)}"
        )
    unknown = sorted(set(data) - {"items", "actions", "k"})
    if unknown:
        raise RequestError(
            HTTPStatus.BAD_REQUEST, f"keys must be among items, actions, k; got {unknown}"
        )
    items = data.get("items")
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(i, str | int) and not isinstance(i, bool) for i in items)
    ):
        raise RequestError(
            HTTPStatus.BAD_REQUEST, "items must be a non-empty list of item ids (strings or ints)"
        )
    if len(items) > settings.max_items:
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            f"items must hold at most {settings.max_items} ids, got {len(items)}",
        )
    if not all(_encodable(i) for i in items):
        raise RequestError(
            HTTPStatus.BAD_REQUEST, "items must be valid Unicode text, got a lone surrogate"
        )
    actions = data.get("actions", ["view"] * len(items))
    if not isinstance(actions, list) or len(actions) != len(items):
        raise RequestError(
            HTTPStatus.BAD_REQUEST, "actions must be a list as long as items, one per item"
        )
    shown = {a if isinstance(a, str) else reprlib.repr(a) for a in actions}
    unknown_actions = sorted(shown - set(REQUEST_ACTIONS))
    if unknown_actions:
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            f"actions must be among {sorted(REQUEST_ACTIONS)}, got {unknown_actions}",
        )
    k = data.get("k", settings.top_k)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= settings.max_k:
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            f"k must be an int in [1, {settings.max_k}], got {reprlib.repr(k)}",
        )
    return PredictRequest(
        buckets=hasher.buckets([str(i) for i in items]),
        actions=np.array([REQUEST_ACTIONS[a] for a in actions], dtype=np.int8),
        k=k,
    )


def _encodable(item: str | int) -> bool:
    """JSON's ``"\\ud800"`` decodes to a str that UTF-8 cannot encode (and the hasher must)."""
    if isinstance(item, int):
        return True
    try:
        item.encode()
    except UnicodeEncodeError:
        return False
    return True


def request_cases(request: PredictRequest, max_len: int) -> Cases:
    """One prediction case from a request, cut as the protocol cuts training prefixes: runs of
    one item collapse into one step with its strongest action, and the last ``max_len`` remain."""
    buckets, actions = request.buckets, request.actions
    heads = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    buckets, actions = buckets[heads], np.maximum.reduceat(actions, heads)
    buckets, actions = buckets[-max_len:], actions[-max_len:]
    prefixes = np.full((1, max_len), PAD, dtype=np.int64)
    prefix_actions = np.full((1, max_len), PAD, dtype=np.int8)
    prefixes[0, : len(buckets)] = buckets
    prefix_actions[0, : len(actions)] = actions
    return Cases(
        prefixes=prefixes,
        prefix_actions=prefix_actions,
        lengths=np.array([len(buckets)], dtype=np.int64),
        next_item=np.array([-1], dtype=np.int64),
        next_action=np.array([-1], dtype=np.int8),
        converts=np.array([False]),
        session_index=np.array([0], dtype=np.int64),
    )


def _stamp(path: Path) -> tuple[int, int] | None:
    """What tells a rewritten file from the one seen before (None: no file)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


@dataclass(frozen=True)
class ServedModel:
    version: int  # the promoted (federation's) version
    model: NextStepModel | MicroBatcher  # what answers predict; the batcher stands in for it
    drift: DriftMonitor
    personal: int | None = None  # the partner's calibrated copy of it, when that is served


class ModelSource:
    """The registry's promoted model, reloaded when ``promoted.json`` changes; or, given the
    partner's ``personal`` registry (``fedpath.clients.calibration``), its calibrated copy of
    that model, as long as the copy's parent is the promoted version.

    A model that fails to load is logged and the previous one keeps serving: a broken
    publication must not take predictions down.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        reference: Cases | None,
        settings: ServingSettings,
        personal: ModelRegistry | None = None,
    ) -> None:
        self.registry = registry
        self.reference = reference
        self.settings = settings
        self.personal = personal
        self.reloads = 0
        self._served: ServedModel | None = None
        self._seen: tuple[tuple[int, int] | None, ...] | None = None
        self._checked = -np.inf
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Sent to a worker process, a source loads the promoted model again there."""
        keep = ("registry", "reference", "settings", "personal")
        return {name: getattr(self, name) for name in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def current(self) -> ServedModel | None:
        now = time.monotonic()
        with self._lock:
            if now - self._checked >= self.settings.reload_every:
                self._checked = now
                self._refresh()
            return self._served

    def _refresh(self) -> None:
        registries = [r for r in (self.registry, self.personal) if r is not None]
        seen = tuple(_stamp(r.root / "promoted.json") for r in registries)
        if seen == self._seen or seen[0] is None:
            return
        self._seen = seen
        try:
            promotion = self.registry.promoted()
            if promotion is None:
                return
            personal = self._personal(promotion.version)
            if self._served and (self._served.version, self._served.personal) == (
                promotion.version,
                personal,
            ):
                return
            model = (
                self.registry.load(promotion.version)
                if personal is None
                else self.personal.load(personal)  # type: ignore[union-attr]
            )
        except Exception:  # any broken publication: keep the old model
            log.exception("promoted model could not be loaded; the previous one keeps serving")
            return
        batch = self.settings.max_batch
        served = MicroBatcher(model, batch) if batch > 1 else model
        self._served = ServedModel(promotion.version, served, self._monitor(model), personal)
        self.reloads += 1
        log.info(
            "serving model version %d%s",
            promotion.version,
            "" if personal is None else f" (calibrated copy {personal})",
            extra={"event": "model_loaded", "version": promotion.version, "personal": personal},
        )

    def _personal(self, version: int) -> int | None:
        """The partner's promoted calibrated copy, if it was tuned from ``version``."""
        promotion = self.personal.promoted() if self.personal else None
        if promotion is None or self.personal is None:
            return None
        return promotion.version if self.personal.get(promotion.version).parent == version else None

    def _monitor(self, model: NextStepModel) -> DriftMonitor:
        """Drift is judged against this model's own output on the partner's held-out cases."""
        if self.reference is None or len(self.reference) == 0:
            reference = np.full((1, len(ACTION_NAMES)), 1.0 / len(ACTION_NAMES))
        else:
            rows = np.arange(min(len(self.reference), REFERENCE_CASES))
            reference = model.predict(self.reference.subset(rows)).action_probs
        return DriftMonitor(reference, self.settings.drift)


def answer(
    served: ServedModel,
    request: PredictRequest,
    catalog: list[str | None],
    settings: ServingSettings,
    max_len: int,
) -> tuple[dict[str, Any], DriftScores]:
    """The prediction for one request, and the drift verdict after it.

    Probabilities are the model's calibrated ones when it carries a calibration; the configured
    decision goes to review below its certified cutoff, or below ``review_threshold`` for a model
    without one (then ``calibrated`` is false and ``cutoff_certified`` too: the answer says so).
    The ``items`` decision judges the list the answer returns, its confidence the model's mass on
    it (``NextStepModel.item_mass``); its cutoff is certified only for lists as long as the ones
    it was certified on (``Calibration.items_k``), so a request for another ``k`` is gated by the
    bare ``review_threshold``.
    """
    cases = request_cases(request, max_len)
    raw = served.model.predict(cases)
    scores = raw.item_scores[0].astype(np.float64)
    local = np.array([item is not None for item in catalog])
    scores[~local] = -np.inf  # only the partner's own items can be recommended
    k = min(request.k, int(local.sum()))
    top = np.argsort(-scores, kind="stable")[:k]
    drift = served.drift.observe(raw.action_probs)  # the reference is raw outputs too
    calibration = served.model.calibration
    predictions = raw if calibration is None else calibration.temperatures.apply(raw)
    cutoffs = {} if calibration is None else dict(calibration.cutoffs)
    chosen: str | bool | list[str | None]
    if settings.decision == "items":
        confidence = float(served.model.item_mass(cases, raw, top[None, :])[0])
        chosen = [catalog[b] for b in top]
        if calibration is None or k != min(calibration.items_k, len(scores)):
            cutoffs.pop("items", None)  # certified for lists of another length
    else:
        index, confidence = (float(v[0]) for v in decide(predictions, settings.decision))
        chosen = _decision_answer(settings.decision, int(index))
    certified = settings.decision in cutoffs
    cutoff = cutoffs[settings.decision] if certified else settings.review_threshold
    body = {
        "model_version": served.version,
        "next_items": [
            {"item": catalog[b], "bucket": int(b), "score": float(scores[b])} for b in top
        ],
        "next_action": {
            name: float(p)
            for name, p in zip(ACTION_NAMES, predictions.action_probs[0], strict=True)
        },
        "conversion_probability": float(predictions.convert_prob[0]),
        "calibrated": calibration is not None,
        "decision": settings.decision,
        "answer": chosen,
        "confidence": confidence,
        "review_cutoff": cutoff if np.isfinite(cutoff) else None,
        "cutoff_certified": certified,
        "needs_review": confidence < cutoff,
    }
    return body, drift


def _decision_answer(decision: str, chosen: int) -> str | bool:
    """The next action's name for ``action``; yes (True) / no for ``exit`` and ``convert``."""
    return ACTION_NAMES[chosen] if decision == "action" else bool(chosen)


@dataclass
class PredictionService:
    """Everything a request handler needs; one per server."""

    source: ModelSource
    hasher: ItemHasher
    catalog: list[str | None]
    settings: ServingSettings
    max_len: int
    checks: dict[str, HealthCheck] = field(default_factory=dict)
    metrics: ServingMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = ServingMetrics(sync_every=self.settings.reload_every)

    def __getstate__(self) -> dict[str, Any]:
        """A service sent to a worker process starts afresh there: its own metrics (in the
        multiprocess folder) and no health check (closures over the parent's objects; the
        worker pool hands the parent's verdicts over instead)."""
        return {k: v for k, v in vars(self).items() if k not in ("metrics", "checks")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state, checks={})
        self.__post_init__()

    def health(self) -> tuple[int, dict[str, Any]]:
        """``/health``: 503 until a promoted model is served (nothing to predict with), and
        ``degraded`` while a check fails: predictions may still be answered, but a partner whose
        SuperNode is not connected gets neither training rounds nor newly promoted models."""
        served = self.source.current()
        body: dict[str, Any] = {
            "status": "ok" if served else "waiting for a promoted model",
            "model_version": served.version if served else None,
        }
        if served and served.personal is not None:
            body["personal_version"] = served.personal  # the partner's calibrated copy of it
        failing = []
        for name, check in self.checks.items():
            healthy, body[name] = check()
            if not healthy:
                failing.append(name)
        if failing:
            body.update(status="degraded", degraded=failing)
        return (HTTPStatus.OK if served else HTTPStatus.SERVICE_UNAVAILABLE), body

    def metrics_text(self) -> str:
        return self.metrics.text(self.source)


def open_service(
    registry_dir: Path,
    *,
    model_key: bytes | None,
    hasher: ItemHasher,
    catalog: list[str | None],
    reference: Cases | None,
    settings: ServingSettings,
    max_len: int,
    personal_dir: Path | None = None,
) -> PredictionService:
    """A service over the registry folder a partner's published models land in (and the one
    its calibrated copies land in, when it calibrates)."""
    registry = ModelRegistry(registry_dir, key=model_key)
    personal = None if personal_dir is None else ModelRegistry(personal_dir, key=model_key)
    return PredictionService(
        source=ModelSource(registry, reference, settings, personal),
        hasher=hasher,
        catalog=catalog,
        settings=settings,
        max_len=max_len,
    )
