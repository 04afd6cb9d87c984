"""What the long-running services (coordinator, partner daemon) tell operators: one JSON object
per log line, and metrics in Prometheus' text format.

Both are written by hand rather than through a client library: the exposition format is a few
lines of text, and structured logging is one formatter on the standard ``logging`` module.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PROMETHEUS_TEXT = "text/plain; version=0.0.4"  # the exposition format's content type
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


@dataclass
class Metric:
    """One metric family: a name, its type and help, and samples by label set."""

    name: str
    kind: str  # counter | gauge
    help: str
    samples: list[tuple[Mapping[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Metric:
        self.samples.append((labels, float(value)))
        return self


def prometheus_text(metrics: Iterable[Metric]) -> str:
    """The exposition text (version 0.0.4) of ``metrics``; NaN is written as Prometheus' NaN."""
    lines = []
    for metric in metrics:
        lines.append(f"# HELP {metric.name} {metric.help}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        for labels, value in metric.samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            name = f"{metric.name}{{{label_text}}}" if label_text else metric.name
            lines.append(f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


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


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))
