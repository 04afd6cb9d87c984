"""``fedpath partner --bundle DIR --data PATH``: one partner, running for as long as it is needed.

The daemon prepares the partner's log once (``local_data``: user and session ids pseudonymized
under the bundle's ``pseudonym.key`` as it is loaded), starts its prediction server, and
keeps a Flower SuperNode connected to the coordinator: ``flower-supernode`` with the bundle's CA
certificate (TLS) and node key (authentication), its node config pointing at the runtime file the
ClientApp reads, run through ``fedpath.clients.supernode`` so that a lost connection Flower gives
up on ends the process. The SuperNode runs with ``--isolation process``: its messages are run by
the partner's long-lived ClientApp host (``fedpath.clients.clientapp_host``), which has Flower,
torch and fedpath imported once, instead of a fresh ``flwr-clientapp`` per message.
``supervisor`` restarts either process with backoff and tells ``/health`` whether each is up.
The log never leaves: only model updates (masked under SecAgg+) and metrics do, through Flower.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from fedpath.clients.supervisor import (
    SupernodeSettings,
    SupernodeSupervisor,
    clientapp_supervisor,
)
from fedpath.errors import FedpathError
from fedpath.federation.flower_env import flower_env

if TYPE_CHECKING:  # the command module stays light: `fedpath` imports it on every call
    from fedpath.clients.calibration import CalibrationSettings
    from fedpath.clients.serving import PredictionService, ServingSettings
    from fedpath.federation.layout import Bundle

log = logging.getLogger(__name__)

MODELS = "models"
RUNTIME = "runtime.json"
FLWR_HOME = "flwr-home"
LEDGERS = "privacy-ledgers"  # the partner's privacy ledger (session-level DP), kept across runs
SUPEREXEC_SECRET = "superexec.secret"  # shared by the SuperNode and its ClientApp host (0600)


@dataclass(frozen=True)
class PartnerSettings:
    serving: ServingSettings
    supernode: SupernodeSettings
    calibration: CalibrationSettings
    threads: int = 1
    ks: tuple[int, ...] = (5, 10, 20)
    format: str | None = None
    complete_sessions: bool = False


def partner_settings(raw: dict[str, Any]) -> PartnerSettings:
    """Typed settings from the merged ``conf/partner.yaml``."""
    from fedpath.clients.calibration import CalibrationSettings
    from fedpath.clients.drift import DriftSettings
    from fedpath.clients.serving import ServingSettings

    return PartnerSettings(
        serving=ServingSettings(**raw["serving"], drift=DriftSettings(**raw["drift"])),
        supernode=SupernodeSettings(**raw["supernode"]),
        calibration=CalibrationSettings(**raw["calibration"]),
        threads=int(raw["training"]["threads"]),
        ks=tuple(int(k) for k in raw["training"]["ks"]),
        format=raw["data"]["format"],
        complete_sessions=bool(raw["data"]["complete_sessions"]),
    )


def build_service(
    bundle: Bundle, work: Path, serving: ServingSettings, *, calibrated: bool = False
) -> PredictionService:
    """The prediction service over the partner's prepared work folder (serving its calibrated
    copies of the promoted model when ``calibrated``)."""
    from fedpath.clients.calibration import PERSONAL
    from fedpath.clients.local_data import CASES, CATALOG, load_catalog
    from fedpath.clients.serving import open_service
    from fedpath.clients.store import load_partner
    from fedpath.data.hashing import ItemHasher
    from fedpath.privacy.keys import model_key

    contract = bundle.federation
    cases = load_partner(work / CASES, bundle.index)
    held_out = cases["test"] if len(cases["test"]) else cases["valid"]
    return open_service(
        work / MODELS,
        model_key=model_key(bundle.model_key),
        hasher=ItemHasher(bundle.item_key.read_bytes(), contract.item_buckets),
        catalog=load_catalog(work / CATALOG, contract.item_buckets),
        reference=held_out if len(held_out) else None,
        settings=serving,
        max_len=contract.max_len,
        personal_dir=work / PERSONAL if calibrated else None,
    )


def supernode_command(
    bundle: Bundle, runtime: Path, settings: SupernodeSettings, secret: Path | None = None
) -> list[str]:
    """The ``flower-supernode`` invocation (through ``fedpath.clients.supernode``, which exits
    when the connection ends): TLS to the coordinator, node authentication; with ``secret``,
    only a ClientApp host holding it may take the node's messages."""
    from fedpath.clients.deployed_app import RUNTIME_KEY
    from fedpath.federation.keys import PARTITION_ID

    node_config = (
        f"{PARTITION_ID}={bundle.index} num-partitions={bundle.n_partners} "
        f'{RUNTIME_KEY}="{runtime}"'
    )
    return [
        sys.executable,
        "-m",
        "fedpath.clients.supernode",
        "--superlink",
        bundle.coordinator,
        "--root-certificates",
        str(bundle.ca_cert),
        "--auth-supernode-private-key",
        str(bundle.private_key),
        "--node-config",
        node_config,
        "--port",
        str(settings.runtime_port),
        "--max-wait-time",
        str(settings.max_wait_time),
        "--isolation",
        "process",
        "--idle-poll",
        str(settings.idle_poll),
        *_secret_args(secret),
    ]


def clientapp_command(settings: SupernodeSettings, secret: Path | None = None) -> list[str]:
    """The partner's warm ClientApp host, polling its SuperNode's local Runtime API."""
    return [
        sys.executable,
        "-m",
        "fedpath.clients.clientapp_host",
        "--runtime-api-address",
        f"127.0.0.1:{settings.runtime_port}",
        "--task-poll",
        str(settings.task_poll),
        *_secret_args(secret),
    ]


def _secret_args(secret: Path | None) -> list[str]:
    return [] if secret is None else ["--superexec-auth-secret-file", str(secret)]


def write_superexec_secret(work: Path) -> Path:
    """A fresh secret the SuperNode's Runtime API asks of whoever takes its messages (Flower's
    SuperExec authentication): under ``--isolation process`` any local process could otherwise
    take a partner's training request and answer it in the partner's name. Owner-only, replaced
    at every start."""
    path = work / SUPEREXEC_SECRET
    path.unlink(missing_ok=True)
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "wb") as stream:
        stream.write(secrets.token_bytes(32))
    return path


def run_partner(bundle_dir: Path, data: Path, work: Path, settings: PartnerSettings) -> None:
    """Prepare, serve, and keep the SuperNode connected until SIGTERM / SIGINT."""
    from fedpath.clients.local_data import CASES, prepare_local_data
    from fedpath.clients.partner import Runtime
    from fedpath.clients.serving_server import serving_token, start_server
    from fedpath.federation.layout import load_bundle

    bundle = load_bundle(bundle_dir)
    token = serving_token(settings.serving.host, bundle.serving_token)  # refused before any work
    local = prepare_local_data(
        bundle, data, work, fmt=settings.format, complete_sessions=settings.complete_sessions
    )
    log.info(
        "partner %s prepared %s: sessions %s, cases %s",
        bundle.name,
        data,
        local.sessions,
        local.cases,
        extra={"event": "data_prepared", "sessions": local.sessions, "cases": local.cases},
    )
    runtime = Runtime(
        bundle=str(bundle.root),
        cases=str((work / CASES).resolve()),
        registry=str((work / MODELS).resolve()),
        secagg=bundle.federation.secagg,
        ledger_dir=str((work / LEDGERS).resolve()),
        threads=settings.threads,
        ks=settings.ks,
        review_threshold=settings.serving.review_threshold,
    ).write(work / RUNTIME)
    env = flower_env(work / FLWR_HOME)
    secret = write_superexec_secret(work).resolve()
    supervisor = SupernodeSupervisor(
        supernode_command(bundle, runtime.resolve(), settings.supernode, secret),
        work,
        settings.supernode,
        env,
    )
    clientapp = clientapp_supervisor(
        clientapp_command(settings.supernode, secret), work, settings.supernode, env
    )
    service = build_service(bundle, work, settings.serving, calibrated=settings.calibration.enabled)
    service.checks["supernode"] = supervisor.health  # /health: degraded while not connected
    service.checks["clientapp"] = clientapp.health  # ... or while its ClientApp is restarting
    server = start_server(service, token)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    clientapp_thread = threading.Thread(target=clientapp.run, args=(stop,), daemon=True)
    clientapp_thread.start()
    if settings.calibration.enabled:
        start_calibration(bundle, work, settings, stop)
    try:
        supervisor.run(stop)
    finally:
        stop.set()
        clientapp_thread.join(timeout=30)
        server.shutdown()
        log.info("partner %s stopped", bundle.name, extra={"event": "stopped"})


def start_calibration(
    bundle: Bundle, work: Path, settings: PartnerSettings, stop: threading.Event
) -> None:
    """Daily calibration in a thread of the daemon (``fedpath.clients.calibration``)."""
    from functools import partial

    from fedpath.clients.calibration import PERSONAL, calibrate, calibration_loop
    from fedpath.clients.local_data import CASES
    from fedpath.clients.store import load_partner
    from fedpath.federation.registry import ModelRegistry
    from fedpath.privacy.keys import model_key

    key = model_key(bundle.model_key)
    run = partial(
        calibrate,
        ModelRegistry(work / MODELS, key=key),
        ModelRegistry(work / PERSONAL, key=key),
        load_partner(work / CASES, bundle.index),
        epochs=settings.calibration.epochs,
        ks=settings.ks,
    )
    thread = threading.Thread(
        target=calibration_loop,
        args=(stop, work, run, settings.calibration),
        name="fedpath-calibration",
        daemon=True,
    )
    thread.start()


def partner_command() -> None:
    """``fedpath partner --bundle DIR --data PATH [--work DIR] [--config FILE] [...]``.

    ``fedpath partner forget USER ...`` and ``fedpath partner recover-ledger ...`` are the
    privacy subcommands of the same noun (``fedpath.privacy.commands``): a partner's own data,
    erased from its store, and its privacy ledger, recovered after a loss.
    """
    if sys.argv[1:2] in (["forget"], ["recover-ledger"]):
        from fedpath.privacy.commands import partner_command as forget_command

        forget_command()
        return
    parser = argparse.ArgumentParser(
        prog="fedpath partner",
        description="Run one partner: its SuperNode (TLS, node key) and its /predict server.",
    )
    parser.add_argument("--bundle", type=Path, required=True, help="the provisioned bundle")
    parser.add_argument("--data", type=Path, required=True, help="the partner's own event log")
    parser.add_argument("--work", type=Path, help="private work folder (default: BUNDLE/work)")
    parser.add_argument("--config", type=Path, help="YAML overriding conf/partner.yaml")
    parser.add_argument("--format", help="log format (default: detected)")
    parser.add_argument("--serve-host", help="address of the /predict server")
    parser.add_argument("--serve-port", type=int, help="port of the /predict server")
    parser.add_argument("--runtime-port", type=int, help="the SuperNode's local Runtime API port")
    args = parser.parse_args()

    from fedpath.telemetry import configure_json_logging
    from fedpath.yamlconf import load_service_config

    configure_json_logging()
    try:
        raw = load_service_config("partner", args.config)
        for section, key, value in (
            ("serving", "host", args.serve_host),
            ("serving", "port", args.serve_port),
            ("supernode", "runtime_port", args.runtime_port),
            ("data", "format", args.format),
        ):
            if value is not None:
                raw[section][key] = value
        work = args.work or args.bundle / "work"
        run_partner(args.bundle, args.data, work, partner_settings(raw))
    except FedpathError as error:
        _fail(f"partner refused: {error}")


def _fail(message: str) -> NoReturn:
    log.error(message, extra={"event": "refused"})
    raise SystemExit(1)
