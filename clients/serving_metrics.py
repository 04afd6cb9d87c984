"""What ``/metrics`` of the prediction service counts, through ``prometheus_client``.

One process (the daemon's default) keeps its metrics in a registry of its own. Several worker
processes (``serving.workers`` > 1) use the library's multiprocess mode: each writes its values
into the folder ``PROMETHEUS_MULTIPROC_DIR`` names (set before the workers start), and whichever
worker answers a scrape sums every worker's files. Counters and the latency histogram add up;
gauges of the model and of drift show the largest value over the workers (each worker watches
drift on the share of traffic it answers).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fedpath.telemetry import exposition, multiprocess_text

if TYPE_CHECKING:
    from fedpath.clients.serving import ModelSource

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable
# /predict latency buckets (seconds): the 20 ms p99 goal sits between two of them
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1.0)


class ServingMetrics:
    """The service's counters, histogram and gauges."""

    def __init__(self, sync_every: float) -> None:
        folder = os.environ.get(MULTIPROC_ENV)
        self.folder = Path(folder) if folder else None
        self.registry = None if self.folder else CollectorRegistry(auto_describe=True)
        self.sync_every = sync_every  # seconds between refreshes of the model and drift gauges
        r = self.registry
        self.responses = Counter(
            "fedpath_predict_requests", "Answered /predict calls", ["code"], registry=r
        )
        self.latency = Histogram(
            "fedpath_predict_seconds",
            "Seconds answering /predict, from its first byte read to its answer",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.needs_review = Counter(
            "fedpath_needs_review", "Predictions below the review threshold", registry=r
        )
        self.reloads = Counter("fedpath_model_reloads", "Promoted models loaded", registry=r)
        self.gauges = {
            name: Gauge(name, text, registry=r, multiprocess_mode="max")
            for name, text in (
                ("fedpath_model_version", "Served model version (0: none)"),
                ("fedpath_drift_confidence_psi", "PSI of live confidence"),
                ("fedpath_drift_action_psi", "PSI of predicted next action"),
                ("fedpath_drift_window", "Live predictions in the window"),
                ("fedpath_drift_alert", "1 while drift exceeds the threshold"),
            )
        }
        self._reloads_seen = 0
        self._synced = -float("inf")

    def record(self, status: int, seconds: float, needs_review: bool) -> None:
        """Count one answer (before it is sent: a client reading /metrics right after its reply
        must find its request there)."""
        self.responses.labels(code=str(status)).inc()
        self.latency.observe(seconds)
        if needs_review:
            self.needs_review.inc()

    def sync(self, source: ModelSource, *, force: bool = False) -> None:
        """Bring the model and drift gauges up to date, at most once per ``sync_every`` seconds
        unless ``force`` (a scrape): drift is a window's PSI, not worth computing per request."""
        now = time.monotonic()
        if not force and now - self._synced < self.sync_every:
            return
        self._synced = now
        served = source.current()
        self.reloads.inc(source.reloads - self._reloads_seen)
        self._reloads_seen = source.reloads
        if served is None:
            self.gauges["fedpath_model_version"].set(0)
            return
        drift = served.drift.scores()
        for name, value in (
            ("fedpath_model_version", served.version),
            ("fedpath_drift_confidence_psi", drift.confidence_psi),
            ("fedpath_drift_action_psi", drift.action_psi),
            ("fedpath_drift_window", drift.samples),
            ("fedpath_drift_alert", float(drift.alert)),
        ):
            self.gauges[name].set(value)

    def text(self, source: ModelSource) -> str:
        """The exposition text: this process's registry, or every worker's files summed."""
        self.sync(source, force=True)
        if self.folder is not None:
            return multiprocess_text(self.folder)
        assert self.registry is not None
        return exposition(self.registry)
