"""``fedpath provision``, ``fedpath coordinator`` and ``fedpath status``: plain argparse.

Like the privacy commands they act on folders a person names, not on a Hydra config tree, and
exit non-zero with the reason on stderr when they refuse.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

from fedpath.errors import FedpathError


def provision_command() -> None:
    """``fedpath provision PROJECT --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="fedpath provision",
        description="Create a federation's CA, coordinator TLS identity and partner bundles.",
    )
    parser.add_argument("project", type=Path, help="project YAML (participants, coordinator)")
    parser.add_argument("--out", type=Path, required=True, help="folder to create (must not exist)")
    args = parser.parse_args()

    from fedpath.server.provision import load_project, provision

    try:
        kit = provision(load_project(args.project), args.out)
    except FedpathError as error:
        _fail(f"provisioning refused: {error}")
    print(f"coordinator workspace: {kit.coordinator}")
    for name, bundle in kit.partners.items():
        print(f"partner bundle {name}: {bundle}")
    print(f"CA (keep offline): {kit.authority}")


def _fail(message: str) -> NoReturn:
    print(f"fedpath: {message}", file=sys.stderr)
    raise SystemExit(1)


def coordinator_command() -> None:
    """``fedpath coordinator --workspace DIR [--config FILE] [--rounds N] [--new-campaign]``."""
    parser = argparse.ArgumentParser(
        prog="fedpath coordinator",
        description="Run the coordinator: SuperLink (TLS, node auth), training campaigns, status.",
    )
    parser.add_argument("--workspace", type=Path, required=True, help="provisioned workspace")
    parser.add_argument("--config", type=Path, help="YAML overriding conf/coordinator.yaml")
    parser.add_argument("--rounds", type=int, help="rounds of a campaign")
    parser.add_argument("--http-port", type=int, help="port of /health, /metrics, /status")
    parser.add_argument(
        "--new-campaign",
        action="store_true",
        help="train again once the last campaign has finished (it resumes an unfinished one)",
    )
    args = parser.parse_args()

    from fedpath.server.deployed.coordinator import choose_campaign, run_coordinator
    from fedpath.server.deployed.settings import STATE, coordinator_settings
    from fedpath.telemetry import configure_json_logging
    from fedpath.yamlconf import load_service_config

    configure_json_logging()
    try:
        raw = load_service_config("coordinator", args.config)
        if args.rounds is not None:
            raw["training"]["rounds"] = args.rounds
        if args.http_port is not None:
            raw["http"]["port"] = args.http_port
        campaign = choose_campaign(args.workspace.resolve() / STATE, new=args.new_campaign)
        run_coordinator(coordinator_settings(args.workspace, raw, campaign))
    except FedpathError as error:
        _fail(f"coordinator refused: {error}")


def status_command() -> None:
    """``fedpath status --workspace DIR [--json]``."""
    parser = argparse.ArgumentParser(
        prog="fedpath status", description="The federation: partners, rounds, promoted model."
    )
    parser.add_argument("--workspace", type=Path, required=True, help="coordinator workspace")
    parser.add_argument("--json", action="store_true", help="print the /status document")
    args = parser.parse_args()

    from fedpath.server.deployed.settings import STATE
    from fedpath.server.deployed.status import federation_status, render_status

    try:
        status = federation_status(args.workspace.resolve() / STATE)
    except FedpathError as error:
        _fail(f"status unreadable: {error}")
    if args.json:
        print(json.dumps(status, indent=1))
        return
    print(render_status(status).rstrip("\n"))
    for line in privacy_lines(status.get("campaign", {})):
        print(line)


def privacy_lines(campaign: dict[str, Any]) -> list[str]:
    """The campaign's differential privacy for ``fedpath status``: ε per partner (the latest of
    the campaign, at the contract's δ) and who refused a round for lack of budget; nothing
    without DP."""
    epsilon = campaign.get("epsilon_by_partner")
    if epsilon is None:
        return []
    spent = ", ".join(f"{name} {value:.3f}" for name, value in sorted(epsilon.items()))
    lines = [
        f"privacy      ε by partner at δ={campaign.get('privacy_delta')}: {spent or 'none yet'}"
    ]
    refused = sorted(
        {
            name
            for r in campaign.get("records", [])
            for name in (r.get("privacy") or {}).get("refused", [])
        }
    )
    if refused:
        lines.append(f"             refused a round (budget spent): {', '.join(refused)}")
    return lines
