"""What a simulated run writes into its audit trail: config, code, data, rounds, artifacts.

The trail is opened before training (config, code, data, and with DP the run id and the most ε
each partner may charge) and finished after it (rounds, artifacts' hashes), so a run killed
while its partners charge their ledgers leaves those charges accounted for in the trail.

In a simulation the coordinator process plays every partner, so it computes the partners' data
digests itself, over the same deterministic partition the federation used; in a deployment each
partner computes :func:`data_digest` on its premises and sends only the hash.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import yaml

import fedpath
from fedpath.durable import file_sha256
from fedpath.privacy.audit import (
    AUDIT_FILE,
    MODEL,
    PARTNER_DATA,
    PRIVACY_PLAN,
    ROUND,
    RUN,
    AuditLog,
)
from fedpath.privacy.digest import data_digest
from fedpath.privacy.dp.client import PartnerPrivacy
from fedpath.simulations.experiment import ExperimentResult, ExperimentSettings
from fedpath.simulations.partition import partition
from fedpath.simulations.pipeline import PreparedData

logger = logging.getLogger(__name__)

ARTIFACTS = ("config.yaml", "results.json", "rounds.csv", "report.md")  # besides the model


def code_version() -> str:
    """``git describe`` of the source tree when fedpath runs from a checkout, else its version."""
    root = Path(fedpath.__file__).resolve().parents[1]
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"fedpath {fedpath.__version__}"
    return f"fedpath {fedpath.__version__} (git {described})"


def begin_simulation_audit(
    data: PreparedData, settings: ExperimentSettings, run_dir: Path
) -> AuditLog:
    """Open ``run_dir/audit.jsonl`` with what is known before training: config, code, data."""
    log = AuditLog(run_dir / AUDIT_FILE)
    log.append(
        RUN,
        {
            "command": "simulate",
            "code_version": code_version(),
            "config": _config(run_dir / "config.yaml"),
            "data": data.source.name,
            "synthetic": data.synthetic,
            "pseudonymized": data.source.pseudonymize,
        },
    )
    for partner in partition(data.split, settings.partition):
        sizes = {name: len(getattr(partner.data, name)) for name in ("train", "valid", "test")}
        log.append(
            PARTNER_DATA,
            {"partner": partner.name, "digest": data_digest(partner.data), "sessions": sizes},
        )
    return log


def record_privacy_plan(
    log: AuditLog, privacy: PartnerPrivacy, *, rounds: int, epochs_per_round: int, count: bool
) -> None:
    """Before any partner charges its ledger: the run id its charges carry and the most ε each
    partner may charge, so a run killed mid-way still has its spending in the trail."""
    session = privacy.settings.session
    bound = (
        None
        if session is None
        else privacy.epsilon_after(rounds, epochs_per_round=epochs_per_round, count_model=count)[0]
    )
    log.append(
        PRIVACY_PLAN,
        {
            "run_id": privacy.run_id,
            "delta": privacy.settings.delta,
            "ledger_dir": None if session is None else session.ledger_dir,
            "max_session_epsilon_per_partner": bound,
            "partners": privacy.n_partners,
        },
    )


def finish_simulation_audit(
    log: AuditLog, result: ExperimentResult, run_dir: Path, *, model_file: str
) -> None:
    """Append the rounds and the artifacts' hashes; call once the artifacts are written.

    ``model_file`` is the model's name in ``run_dir``, plain or encrypted: the trail hashes the
    file as it is on disk.
    """
    names = result.federation.partner_names
    for record in result.federation.rounds:
        log.append(
            ROUND,
            {
                "round": record.round,
                "sampled": record.sampled,
                "participants": [names[i] for i in record.participants],
                "dropped": record.dropped,
                "dropped_partners": [names[i] for i in record.dropped_partners],
                "failures": record.failures,
            },
        )
    files = (*ARTIFACTS, model_file)
    hashes = {f: file_sha256(run_dir / f) for f in files if (run_dir / f).is_file()}
    log.append(MODEL, {"model": model_file, "sha256": hashes.get(model_file), "files": hashes})
    logger.info("audit trail %s written; head %s (keep it to verify the trail)", log.path, log.head)


def _config(path: Path) -> dict[str, Any] | None:
    """The resolved config the CLI wrote; None when the run was started from Python without it."""
    return yaml.safe_load(path.read_text()) if path.is_file() else None
