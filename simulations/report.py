"""The run folder of `fedpath simulate`: rounds, results, model, plots, side-by-side report."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from fedpath.plots import plot_curves
from fedpath.privacy.audit import PRIVACY, AuditLog
from fedpath.privacy.crypto import save_run_model
from fedpath.report import HEADLINE_METRICS, markdown_table
from fedpath.runfolder import write_json, write_rows_csv
from fedpath.simulations.experiment import HEADLINE, ExperimentResult, ExperimentSettings
from fedpath.simulations.lineage import finish_simulation_audit
from fedpath.simulations.pipeline import PreparedData

CONVERSION_COLUMNS = (
    "sessions",
    "actual_conversions",
    "predicted_conversions",
    "actual_rate",
    "predicted_rate",
)
ROUND_CURVES = ("loss", "recall@20", "mrr@20", "action_accuracy", "round_seconds")
ROUND_COLUMNS = (
    "round",
    "sampled",
    "participants",
    "dropped",
    "loss",
    "recall@20",
    "bytes_up",
    "bytes_down",
    "round_seconds",
)


def write_simulation_run(
    data: PreparedData,
    settings: ExperimentSettings,
    result: ExperimentResult,
    run_dir: Path,
    *,
    audit: AuditLog,
    model_key: bytes | None = None,
) -> None:
    """Everything a reader of the run needs, beside the resolved config the CLI already wrote;
    ``audit`` is the trail opened before training (``begin_simulation_audit``), finished here.

    With ``model_key`` the model is written only encrypted under it (``save_run_model``).
    """
    rounds = [record.row() for record in result.federation.rounds]
    privacy = result.federation.privacy
    write_rows_csv(run_dir / "rounds.csv", rounds)
    # A partner's short name -> every group (category, platform) it merged; empty when drawn.
    write_json(run_dir / "partners.json", {p.name: list(p.groups) for p in result.partners})
    write_json(
        run_dir / "results.json",
        {
            "data": data.source.name,
            "synthetic": data.synthetic,
            "model": settings.federation.model,
            "strategy": settings.federation.strategy,
            "secagg": settings.federation.secagg.enabled,
            "partners": len(result.partners),
            "rounds": [
                {**record.row(), "dropped_partners": record.dropped_partners}
                for record in result.federation.rounds
            ],
            "comparison": result.comparison_rows(),
            "ratios": result.ratios(),
            "per_partner": [vars(p) for p in result.partners],
            "funnel": data.funnel.to_dict(),
            "federated_funnel": (
                result.federation.funnel.funnel.to_dict() if result.federation.funnel else None
            ),
            "calibration": (
                result.federation.model.calibration.to_dict()
                if result.federation.model.calibration
                else None
            ),
            "gate": result.federation.gate,
            "personalization": result.personalization,
            "privacy": None if privacy is None else privacy.to_dict(),
            "seconds": result.federation.seconds,
        },
    )
    model_file = save_run_model(run_dir, result.federation.model, model_key)
    plot_curves(
        rounds,
        x_key="round",
        y_keys=ROUND_CURVES,
        path=run_dir / "rounds.png",
        title=f"federated {settings.federation.model} ({settings.federation.strategy})",
    )
    _plot_partner_spread(result, run_dir / "partners.png")
    (run_dir / "report.md").write_text(_report(data, settings, result))
    finish_simulation_audit(audit, result, run_dir, model_file=model_file.name)
    if privacy is not None:
        audit.append(PRIVACY, privacy.to_dict())


def _plot_partner_spread(result: ExperimentResult, path: Path) -> None:
    """Per-partner recall@20 of each system: how unevenly federation serves its partners."""
    systems = [
        s
        for s in ("local", "federated", "centralized")
        if any(getattr(p, s) for p in result.partners)
    ]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for offset, system in enumerate(systems):
        values = [getattr(p, system).get(HEADLINE) for p in result.partners if getattr(p, system)]
        ax.scatter([offset] * len(values), values, alpha=0.6)
        ax.boxplot([v for v in values if v == v], positions=[offset], widths=0.4)
    ax.set_xticks(range(len(systems)), systems)
    ax.set_ylabel(f"{HEADLINE} on the partner's own test")
    ax.set_title("per-partner spread")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _report(data: PreparedData, settings: ExperimentSettings, result: ExperimentResult) -> str:
    fed = settings.federation
    label = " (SYNTHETIC data: no quality claim)" if data.synthetic else ""
    names = result.federation.partner_names
    dropped = [
        f"round {r.round}: {', '.join(names[i] for i in r.dropped_partners)}"
        for r in result.federation.rounds
        if r.dropped_partners
    ]
    ratio_rows = [{"ratio": k, "value": v} for k, v in result.ratios().items()]
    partner_rows = [
        {
            "partner": p.name,
            "train_cases": p.train_cases,
            "test_item_cases": p.test_item_cases,
            "local": (p.local or {}).get(HEADLINE),
            "federated": p.federated.get(HEADLINE),
            "centralized": (p.centralized or {}).get(HEADLINE),
        }
        for p in result.partners
    ]
    return "\n\n".join(
        [
            f"# fedpath simulate: {fed.model} on {data.source.name}{label}",
            f"{len(result.partners)} partners ({settings.partition.scheme} partition), "
            f"strategy {fed.strategy}, SecAgg+ {'on' if fed.secagg.enabled else 'OFF'}, "
            f"{fed.rounds} rounds x {fed.local_epochs} local epoch(s), seed {fed.seed}; "
            f"federation took {result.federation.seconds:.1f} s.",
            *data.account(),
            "## Federated vs centralized vs local-only (test split)",
            markdown_table(result.comparison_rows(), ["system", *HEADLINE_METRICS]),
            markdown_table(ratio_rows, ["ratio", "value"]),
            f"## Per partner ({HEADLINE} on each partner's own test data)",
            markdown_table(partner_rows, list(partner_rows[0])),
            "## Rounds",
            markdown_table([r.row() for r in result.federation.rounds], ROUND_COLUMNS),
            "Dropped partners: " + ("; ".join(dropped) if dropped else "none"),
            *_extras(result),
            "## Funnel of the data (computed centrally, for the simulation report only)",
            markdown_table(data.funnel.as_rows(), list(data.funnel.as_rows()[0])),
            "![rounds](rounds.png)\n\n![partners](partners.png)",
        ]
    )


def _partner_funnels(result: ExperimentResult) -> list[str]:
    """Each partner's own funnel and forecast: only a simulation, which plays every partner, has
    them; a deployed coordinator learns the sums above and nothing else."""
    rows = []
    for partner in result.partners:
        if partner.funnel is None or partner.conversion is None:
            continue
        views, carts, purchases = partner.funnel.reached
        rows.append(
            {
                "partner": partner.name,
                "sessions": views,
                "cart": carts,
                "purchase": purchases,
                "drop_off view→cart": views - carts,
                "drop_off cart→purchase": carts - purchases,
                **{f"test {k}": v for k, v in partner.conversion.row().items()},
            }
        )
    if not rows:
        return []
    return [
        "### Per partner (simulation only; partners.json maps each label to its groups)",
        markdown_table(rows, list(rows[0])),
    ]


def _extras(result: ExperimentResult) -> list[str]:
    """Sections for what ran after training: secure funnel, promotion gate, personalization."""
    sections = []
    calibration = result.federation.model.calibration
    if calibration is not None:
        rows = [
            {
                "parameter": f"temperature, {head} head",
                "value": getattr(calibration.temperatures, head),
            }
            for head in ("action", "convert")
        ] + [
            {"parameter": f"review cutoff, {decision}", "value": cutoff}
            for decision, cutoff in calibration.cutoffs.items()
        ]
        sections += [
            "## Calibration of the federated model (secure sums of partners' valid cases)",
            f"Temperatures fitted on the summed NLL; each decision's review cutoff certified to "
            f"be right ≥ {calibration.threshold:.2f} of the time on the summed counts (inf: no "
            f"cutoff earns it, every such decision goes to review). The model file carries both.",
            markdown_table(rows, ["parameter", "value"]),
        ]
    federated_funnel = result.federation.funnel
    if federated_funnel is not None:
        rows = federated_funnel.funnel.as_rows()
        forecast = "calibrated" if federated_funnel.calibrated else "uncalibrated"
        sections += [
            "## Federated funnel (SecAgg+ sum of partners' counts: no partner's own funnel seen)",
            markdown_table(rows, list(rows[0])),
            f"Predicted vs actual conversion of the union's test sessions (secure sums; "
            f"predicted: the {forecast} conversion probability at each session's first event):",
            markdown_table([federated_funnel.conversion.row()], CONVERSION_COLUMNS),
            *_partner_funnels(result),
        ]
    gate = result.federation.gate
    if gate is not None:
        verdict = "PROMOTED" if gate.promoted else "kept the champion"
        sections += [
            f"## Champion / challenger gate: {verdict}",
            markdown_table([gate.row()], list(gate.row())),
        ]
    privacy = result.federation.privacy
    if privacy is not None and privacy.rounds:
        sections += [
            "## Differential privacy (ε cumulative over the run's rounds)",
            privacy.headline(),
            markdown_table(privacy.rows(), list(privacy.rows()[0])),
        ]
    if result.personalization:
        rows = [
            {
                "partner": p.name,
                "adopted": p.adopted,
                f"global {HEADLINE}": p.shared.get(HEADLINE),
                f"personalized {HEADLINE}": p.personalized.get(HEADLINE),
            }
            for p in result.personalization
        ]
        sections += [
            "## Personalization (output layers tuned locally; nothing sent back)",
            markdown_table(rows, list(rows[0])),
        ]
    return sections
