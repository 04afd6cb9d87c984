"""What a simulated run writes into its audit trail: config, code, data, rounds, artifacts.

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
from fedpath.pipeline import PreparedData
from fedpath.privacy.audit import AUDIT_FILE, MODEL, PARTNER_DATA, ROUND, RUN, AuditLog
from fedpath.privacy.digest import data_digest
from fedpath.privacy.durable import file_sha256
from fedpath.simulations.experiment import ExperimentResult, ExperimentSettings
from fedpath.simulations.partition import partition

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


def write_simulation_audit(
    data: PreparedData,
    settings: ExperimentSettings,
    result: ExperimentResult,
    run_dir: Path,
    *,
    model_file: str,
) -> AuditLog:
    """Append the run's lineage to ``run_dir/audit.jsonl``; call once its artifacts are written.

    ``model_file`` is the model's name in ``run_dir``, plain or encrypted: the trail hashes the
    file as it is on disk.
    """
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
    return log


def _config(path: Path) -> dict[str, Any] | None:
    """The resolved config the CLI wrote; None when the run was started from Python without it."""
    return yaml.safe_load(path.read_text()) if path.is_file() else None
