"""Daily calibration at the partner: between campaigns, tune the served model's output layers on
the partner's own cases, serve the tuned copy if its own validation cases say it is no worse,
and report what it gains on its newest held-out events.

This is the FedPer-style personalization simulations already measure
(``fedpath.clients.personalize``), run by the partner daemon on its own machine: nothing leaves
it. The tuned copies live in their own registry (``work/personal/``), apart from the registry the
coordinator's publications fill under the coordinator's version numbers; each names its base
(``parent``), and the prediction service serves a tuned copy only while its base is the promoted
model, so a newly published model replaces a stale calibration at once, until the next one.
Off by default (``calibration.enabled`` in ``partner.yaml``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedpath.clients.personalize import personalize
from fedpath.data.containers import Cases
from fedpath.durable import atomic_write, utc_now
from fedpath.evaluate import evaluate
from fedpath.federation.registry import ModelRegistry
from fedpath.models.neural import NeuralNextStepModel
from fedpath.telemetry import json_safe

log = logging.getLogger(__name__)

PERSONAL = "personal"  # work/personal/: the partner's tuned copies
REPORT = "calibration.json"  # work/calibration.json: the last calibration's figures
CAMPAIGN = "calibration"  # the campaign name tuned copies are registered under


@dataclass(frozen=True)
class CalibrationSettings:
    enabled: bool = False  # off by default: a partner opts in
    every_hours: float = 24.0  # hours between calibrations (the first runs at start)
    epochs: int = 2  # epochs over the partner's train cases, output layers only

    def __post_init__(self) -> None:
        if not self.every_hours > 0:
            raise ValueError(f"calibration every_hours must be > 0, got {self.every_hours!r}")
        if self.epochs < 1:
            raise ValueError(f"calibration epochs must be >= 1, got {self.epochs!r}")


def calibrate(
    registry: ModelRegistry,
    personal: ModelRegistry,
    cases: Mapping[str, Cases],
    *,
    epochs: int,
    ks: tuple[int, ...],
) -> dict[str, Any]:
    """Tune the promoted model on ``cases["train"]``, keep it if ``cases["valid"]`` says it is
    no worse, and score both on ``cases["test"]`` (the partner's newest events, held out)."""
    promoted = registry.promoted()
    if promoted is None:
        return {"at": utc_now(), "skipped": "no promoted model yet"}
    model = registry.load(promoted.version)
    if not isinstance(model, NeuralNextStepModel):
        return {"at": utc_now(), "skipped": f"{model.name} has no output layers to tune"}
    tuned, adopted = personalize(model, cases, epochs=epochs)
    shared = evaluate(model, cases["test"], ks=ks)
    own = evaluate(tuned, cases["test"], ks=ks)
    report: dict[str, Any] = {
        "at": utc_now(),
        "base_version": promoted.version,
        "adopted": adopted,
        "test_cases": len(cases["test"]),
        "shared": shared,
        "personalized": own,
        "gain": {key: own[key] - shared[key] for key in shared},
    }
    if adopted:
        card = personal.register(
            tuned,
            campaign=CAMPAIGN,
            round=promoted.version,
            config_hash="-",
            parent=promoted.version,
            metrics=own,
        )
        personal.promote(card.version, json_safe(report))
        report["personal_version"] = card.version
    return report


def calibration_loop(
    stop: threading.Event,
    work: Path,
    run: Callable[[], dict[str, Any]],
    settings: CalibrationSettings,
) -> None:
    """Calibrate now and every ``every_hours`` until ``stop``; each report to ``work/REPORT``
    and the log. A failure is logged and waits for the next turn: serving goes on regardless."""
    while not stop.is_set():
        try:
            report = run()
        except Exception:
            log.exception("calibration failed", extra={"event": "calibration_failed"})
        else:
            atomic_write(work / REPORT, json.dumps(json_safe(report), indent=1).encode())
            gain = report.get("gain", {})
            log.info(
                "calibration: %s",
                report.get("skipped")
                or f"{'adopted' if report['adopted'] else 'kept the shared model'}, "
                + ", ".join(f"{k} {v:+.4f}" for k, v in gain.items() if k.startswith("recall@")),
                extra={"event": "calibrated", **json_safe(report)},
            )
        stop.wait(settings.every_hours * 3600)
