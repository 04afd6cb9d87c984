"""``fedpath provision``, ``fedpath coordinator`` and ``fedpath status``: plain argparse.

Like the privacy commands they act on folders a person names, not on a Hydra config tree, and
exit non-zero with the reason on stderr when they refuse.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

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
