"""The federation at a glance: what ``fedpath status`` prints and the coordinator's ``/status``,
``/metrics`` and status page (``server/deployed/page/``) serve.

Two small JSON documents in the coordinator's state folder hold it. ``campaign.json`` is written
by the ServerApp (the process that runs the rounds, spawned by the SuperLink) after every step:
round, participants, dropouts, metrics, bytes, promotion. ``service.json`` is written by the
coordinator service: SuperLink up or not, which partner got which node id, refusals, run
attempts. Files rather than a socket between the two processes, because the ServerApp is
Flower's child, not ours, and because a status that survives a coordinator restart is what an
operator wants to see after one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from fedpath.durable import atomic_write, utc_now
from fedpath.errors import DataFormatError
from fedpath.telemetry import json_safe, snapshot_text

CAMPAIGN = "campaign.json"
SERVICE = "service.json"
GRADES = ("info", "warning", "critical")  # alert grades, least urgent first
MODERATE_PSI = 0.1  # PSI from which a shift is "moderate" (the convention fedpath's drift follows)


def write_status(path: Path, document: dict[str, Any]) -> None:
    """Replace a status document atomically, stamped with the time it was written."""
    atomic_write(path, json.dumps(json_safe({**document, "updated": utc_now()}), indent=1).encode())


def read_status(path: Path) -> dict[str, Any]:
    """A status document, or ``{}`` when nothing has been written yet."""
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataFormatError(f"{path}: must be a JSON status document, got {error}") from None
    if not isinstance(document, dict):
        raise DataFormatError(f"{path}: must be a JSON object, got {type(document).__name__}")
    return document


def federation_status(state: Path) -> dict[str, Any]:
    """Both documents of a coordinator's state folder, as ``/status`` serves them, with the
    alerts they raise (graded here once, so the page and ``fedpath status`` agree)."""
    status = {"service": read_status(state / SERVICE), "campaign": read_status(state / CAMPAIGN)}
    return {**status, "alerts": status_alerts(status)}


def status_alerts(status: dict[str, Any]) -> list[dict[str, str]]:
    """``{"grade", "subject", "message"}`` per alert, most urgent first.

    Critical: the SuperLink is down, a node no provisioned partner owns is connected, or a
    partner's drift monitor has raised its alert. Warning: partners dropped out of the last
    round, connections were refused, or a partner's drift is moderate (PSI from
    ``MODERATE_PSI``). Info: a partner's drift is stable. Drift comes from ``campaign.drift``,
    ``{partner: {"confidence_psi", "action_psi", "samples", "alert"}}``, when partners report it.
    """
    service, campaign = status.get("service", {}), status.get("campaign", {})
    alerts = []
    if service and not service.get("superlink_up"):
        alerts.append(("critical", "superlink", "the SuperLink is not running"))
    unknown = campaign.get("unknown_nodes", [])
    if unknown:
        alerts.append(
            (
                "critical",
                "unknown nodes",
                f"{len(unknown)} connected node(s) no provisioned partner's, never sampled: "
                + ", ".join(str(n) for n in unknown),
            )
        )
    records = campaign.get("records", [])
    if records and records[-1].get("dropped"):
        last = records[-1]
        alerts.append(
            (
                "warning",
                "dropouts",
                f"round {last.get('round')}: {last['dropped']} sampled partner(s) dropped",
            )
        )
    for reason, count in sorted(service.get("refusals", {}).items()):
        alerts.append(("warning", "refusals", f"{count} connection(s) refused: {reason}"))
    for partner, drift in sorted(campaign.get("drift", {}).items()):
        alerts.append((_drift_grade(drift), f"drift {partner}", _drift_message(drift)))
    alerts.sort(key=lambda alert: -GRADES.index(alert[0]))  # stable: order kept within a grade
    return [{"grade": g, "subject": s, "message": m} for g, s, m in alerts]


def _drift_grade(drift: dict[str, Any]) -> str:
    if drift.get("alert"):
        return "critical"
    worst = max(drift.get("confidence_psi") or 0.0, drift.get("action_psi") or 0.0)
    return "warning" if worst >= MODERATE_PSI else "info"


def _drift_message(drift: dict[str, Any]) -> str:
    state = {"critical": "drift alert", "warning": "moderate drift", "info": "stable"}
    return (
        f"{state[_drift_grade(drift)]}: confidence PSI {drift.get('confidence_psi', 0.0):.3f}, "
        f"next-action PSI {drift.get('action_psi', 0.0):.3f} over "
        f"{drift.get('samples', 0)} predictions"
    )


def render_status(status: dict[str, Any]) -> str:
    """The human view ``fedpath status`` prints."""
    service, campaign = status.get("service", {}), status.get("campaign", {})
    partners = service.get("partners", {})
    connected = set(campaign.get("connected_nodes", []))
    lines = [
        f"coordinator  {service.get('address', '?')}  superlink "
        f"{'up' if service.get('superlink_up') else 'DOWN'}  (updated {service.get('updated')})",
        f"partners     {sum(p.get('node_id') in connected for p in partners.values())} of "
        f"{len(partners)} connected at the last round",
    ]
    for name, partner in sorted(partners.items()):
        state = "connected" if partner.get("node_id") in connected else "not seen"
        lines.append(f"  {name:<16} node {partner.get('node_id')}  {state}")
    unknown = campaign.get("unknown_nodes", [])
    if unknown:
        lines.append(
            f"WARNING      {len(unknown)} connected node(s) no provisioned partner's, never "
            f"sampled: {', '.join(str(n) for n in unknown)} (who registered their keys?)"
        )
    if not campaign:
        lines.append("campaign     none started")
        return "\n".join(lines) + "\n"
    lines.append(
        f"campaign     {campaign.get('campaign')}  {campaign.get('state')}  round "
        f"{campaign.get('completed_rounds', 0)} of {campaign.get('rounds')} completed"
    )
    records = campaign.get("records", [])
    if records:
        last = records[-1]
        metrics = last.get("metrics", {})
        shown = ", ".join(
            f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith(("recall@", "action_acc"))
        )
        lines.append(
            f"last round   {last.get('round')}: {len(last.get('participants', []))} partners, "
            f"{last.get('dropped', 0)} dropped, {last.get('round_seconds', math.nan):.1f} s; "
            f"{shown}"
        )
    promoted = campaign.get("promoted")
    lines.append(
        "promoted     none yet"
        if not promoted
        else f"promoted     version {promoted.get('version')} ({promoted.get('reason', '')})"
    )
    refusals = service.get("refusals", {})
    if refusals:
        lines.append("refusals     " + ", ".join(f"{k}: {v}" for k, v in sorted(refusals.items())))
    return "\n".join(lines) + "\n"


def status_metrics(status: dict[str, Any]) -> str:
    """Prometheus text of the federation: rounds, participants, dropouts, time, bytes."""
    service, campaign = status.get("service", {}), status.get("campaign", {})
    records = campaign.get("records", [])
    per_round = {
        "fedpath_round_participants": ("Partners in the round's aggregate", "participants"),
        "fedpath_round_dropped": ("Sampled partners whose update did not arrive", "dropped"),
        "fedpath_round_seconds": ("Round time, sampling to federated evaluation", "round_seconds"),
        "fedpath_round_bytes_up": ("Bytes partners sent in the round", "bytes_up"),
        "fedpath_round_bytes_down": ("Bytes the coordinator sent in the round", "bytes_down"),
    }
    gauges = {
        "fedpath_superlink_up": ("1 while the SuperLink runs", bool(service.get("superlink_up"))),
        "fedpath_partners_registered": (
            "Partner keys registered",
            len(service.get("partners", {})),
        ),
        "fedpath_partners_connected": (
            "Partners connected at the last round",
            len(campaign.get("connected_nodes", [])),
        ),
        "fedpath_unknown_nodes": (
            "Connected nodes that are no provisioned partner's (never sampled; alert above 0)",
            len(campaign.get("unknown_nodes", [])),
        ),
        "fedpath_rounds_completed": (
            "Rounds completed in the campaign",
            campaign.get("completed_rounds", 0),
        ),
        "fedpath_rounds_planned": ("Rounds planned in the campaign", campaign.get("rounds", 0)),
        "fedpath_promoted_version": (
            "Promoted model version (0: none)",
            (campaign.get("promoted") or {}).get("version", 0),
        ),
    }
    families: list[Metric] = [
        GaugeMetricFamily(name, text, value=float(value)) for name, (text, value) in gauges.items()
    ]
    families.append(
        CounterMetricFamily(
            "fedpath_run_attempts", "flwr runs launched", value=service.get("run_attempts", 0)
        )
    )
    refusals = CounterMetricFamily(
        "fedpath_refusals", "Connections refused, by reason", labels=["reason"]
    )
    for reason, count in sorted(service.get("refusals", {}).items()):
        refusals.add_metric([reason], count)
    families.append(refusals)
    for name, (text, key) in per_round.items():
        family = GaugeMetricFamily(name, text, labels=["round"])
        for record in records:
            value = record.get(key)
            value = len(value) if isinstance(value, list) else value
            family.add_metric([str(record["round"])], math.nan if value is None else value)
        families.append(family)
    last = records[-1].get("metrics", {}) if records else {}
    evaluation = GaugeMetricFamily(
        "fedpath_last_round_metric", "Pooled evaluation, last round", labels=["metric"]
    )
    for key, value in sorted(last.items()):
        evaluation.add_metric([key], math.nan if value is None else value)
    families.append(evaluation)
    return snapshot_text(families)
