"""What the long-running services (coordinator, partner daemon) tell operators: one JSON object
per log line, and metrics in Prometheus' text format.

Metrics go through ``prometheus_client``, the ecosystem's library: its counters and histograms,
its exposition format and escaping, and its multiprocess mode, which sums the counters of a
prediction service's worker processes. Structured logging is one formatter on the standard
``logging`` module.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Metric, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

PROMETHEUS_TEXT = CONTENT_TYPE_LATEST  # the content type of what generate_latest writes
RESERVED = frozenset(vars(logging.makeLogRecord({})))  # attributes every LogRecord has


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra}``: fields passed as ``extra=`` stay fields,
    so a log pipeline can filter on ``event`` or ``reason`` without parsing prose."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_json_logging(level: int = logging.INFO) -> None:
    """Route fedpath's loggers to stderr as JSON lines (once per process).

    Only fedpath's own: inside Flower's processes every log line is also shipped to the
    SuperLink over HTTP, and turning on the HTTP client's own INFO lines there would log each
    shipment, which is shipped in turn, forever.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("fedpath")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


class _Snapshot(Collector):
    """Metric families computed afresh at each scrape (from state documents, not counters this
    process increments): the custom-collector pattern of ``prometheus_client``."""

    def __init__(self, families: Callable[[], Iterable[Metric]]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families()


def exposition(registry: CollectorRegistry) -> str:
    """The exposition text of a registry, in the format ``PROMETHEUS_TEXT`` names."""
    return generate_latest(registry).decode()


def snapshot_text(families: Iterable[Metric]) -> str:
    """The exposition text of metric families built for one scrape."""
    listed = list(families)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(lambda: listed))
    return exposition(registry)


def multiprocess_text(folder: Path) -> str:
    """The exposition text summed over every worker process writing metrics into ``folder``
    (``prometheus_client``'s multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` in the workers)."""
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=str(folder))
    return exposition(registry)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity as None: JSON has neither, and a figure nobody
    could compute (an AUC without positives) must still leave a readable document."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
