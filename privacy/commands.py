"""`fedpath audit` and `fedpath partner`: the privacy subcommands, plain argparse over privacy/.

Unlike train or simulate they take no Hydra config: each acts on one file a person names, and
exits non-zero with the reason on stderr when it refuses, so scripts and CI can rely on them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from fedpath.errors import FedpathError


def audit_command() -> None:
    """``fedpath audit verify RUN [--head HASH]``: the chain, its head, the artifacts it hashed."""
    parser = argparse.ArgumentParser(prog="fedpath audit", description="Audit trails of runs.")
    actions = parser.add_subparsers(dest="action", required=True)
    verify = actions.add_parser("verify", help="check a run's hash chain and head; exit 1 if not")
    verify.add_argument("run", type=Path, help="run folder, or its audit.jsonl")
    verify.add_argument("--head", help="head hash kept outside the run folder, to compare with")
    args = parser.parse_args()

    from fedpath.privacy.audit import AUDIT_FILE, verify_artifacts, verify_audit

    path = args.run / AUDIT_FILE if args.run.is_dir() else args.run
    try:
        entries = verify_audit(path, expected_head=args.head)
        artifacts = verify_artifacts(path.parent, entries)
    except FedpathError as error:
        _fail(f"audit verification failed: {error}")
    head = entries[-1].hash if entries else "(empty)"
    checked = (
        f"{len(artifacts)} recorded artifacts match"
        if artifacts
        else "no model entry: the run did not finish, no artifacts to check"
    )
    print(f"audit trail intact: {len(entries)} entries in {path}; {checked}\nhead: {head}")


def partner_command() -> None:
    """``fedpath partner forget USER --store PATH --ledger PATH [--key PATH]`` and
    ``fedpath partner recover-ledger --ledger PATH [--epsilon E --delta D]``."""
    parser = argparse.ArgumentParser(prog="fedpath partner", description="A partner's own data.")
    actions = parser.add_subparsers(dest="action", required=True)
    recover = actions.add_parser(
        "recover-ledger", help="charge what a cut privacy ledger lost, so the partner may go on"
    )
    recover.add_argument("--ledger", type=Path, required=True, help="the partner's privacy ledger")
    recover.add_argument("--epsilon", type=float, help="ε lost (default: head total - held)")
    recover.add_argument("--delta", type=float, help="δ lost (default: head total - held)")
    forget = actions.add_parser("forget", help="erase a user from the store; record it")
    forget.add_argument("user", help="the user's id as the store holds it")
    forget.add_argument("--store", type=Path, required=True, help="canonical events CSV/Parquet")
    forget.add_argument("--ledger", type=Path, required=True, help="the partner's privacy ledger")
    forget.add_argument(
        "--key", type=Path, help="pseudonymization key file (default: $FEDPATH_PSEUDONYM_KEY)"
    )
    args = parser.parse_args()
    if args.action == "recover-ledger":
        _recover_ledger(args.ledger, args.epsilon, args.delta)
        return

    from fedpath.privacy.erasure import forget_user
    from fedpath.privacy.keys import pseudonym_key

    try:
        erasure = forget_user(
            args.store, args.user, ledger=args.ledger, key=pseudonym_key(args.key)
        )
    except FedpathError as error:
        _fail(f"erasure refused: {error}")
    print(
        f"erased user {erasure.user}: {erasure.events_removed} events in "
        f"{erasure.sessions_removed} sessions removed from {args.store} "
        f"({erasure.events_kept} kept); recorded as entry {erasure.entry.seq} of {args.ledger}"
    )


def _recover_ledger(path: Path, epsilon: float | None, delta: float | None) -> None:
    from fedpath.privacy.dp.ledger import LedgerLog

    try:
        entry = LedgerLog(path).recover(epsilon=epsilon, delta=delta)
    except (FedpathError, ValueError) as error:
        _fail(f"ledger recovery refused: {error}")
    print(
        f"recorded the loss as entry {entry.seq} of {path}: epsilon {entry.data['epsilon']:g}, "
        f"delta {entry.data['delta']:g} charged ({entry.data['note']}); the head is resealed"
    )


def _fail(message: str) -> NoReturn:
    print(f"fedpath: {message}", file=sys.stderr)
    raise SystemExit(1)
