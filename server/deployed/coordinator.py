"""``fedpath coordinator --workspace DIR``: the coordinator service of a deployed federation.

It drives Flower's own deployment engine, nothing home-made on the wire:

1. ``flower-superlink`` with the workspace's TLS identity, ``--enable-supernode-auth`` (only
   registered partner keys may join), ``--database`` in the state folder (a restart remembers the
   federation) and runtime dependency installation off (the app's code is the installed fedpath;
   nothing is fetched at run time), wrapped by ``fedpath.server.deployed.superlink_guard`` so
   that only its Fleet API answers other machines (no one can register a key from outside);
2. ``flwr supernode register`` for every authorised partner key not yet registered;
3. ``flwr run`` of fedpath's Flower App (``fedpath.server.deployed.server_app``) with the plan of
   the current campaign; a run that ends before the campaign is finished is launched again after a
   backoff and resumes from the last checkpointed round;
4. ``/health``, ``/metrics`` (Prometheus), ``/status`` and its page (``/``) over HTTP, JSON
   logs on stderr, and every refusal the SuperLink reports (a node key it does not know) logged
   with its reason and counted. A partner that does not trust the coordinator's certificate
   never reaches the SuperLink's application layer: that refusal is logged by the partner's
   daemon.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import fedpath
from fedpath.errors import FedpathError
from fedpath.federation.flower_env import flower_env
from fedpath.federation.keys import CAMPAIGN_KEY
from fedpath.server.deployed import superlink_guard
from fedpath.server.deployed.endpoint import ServiceHandler
from fedpath.server.deployed.server_app import PLAN_KEY
from fedpath.server.deployed.settings import (
    NODE_IDS,
    CoordinatorSettings,
    registered_nodes,
    write_plan,
)
from fedpath.server.deployed.status import (
    CAMPAIGN,
    SERVICE,
    federation_status,
    read_status,
    status_metrics,
    write_status,
)
from fedpath.server.deployed.status_page import page_asset
from fedpath.telemetry import PROMETHEUS_TEXT

log = logging.getLogger(__name__)

CONNECTION = "fedpath"  # the SuperLink connection name in the coordinator's own FLWR_HOME
LOGS = "logs"
DATABASE = "superlink.db"
CAMPAIGN_ID = "campaign-id"
FINISHED = "finished"
APP_PYPROJECT = """\
# fedpath's Flower App: the components are modules of the installed fedpath package, so the
# app folder ships no code and nothing is installed at run time.
[project]
name = "fedpath-deployment"
version = "{version}"
description = "fedpath ServerApp and ClientApp of a deployed federation"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "fedpath"

[tool.flwr.app.components]
serverapp = "fedpath.server.deployed.server_app:app"
clientapp = "fedpath.clients.deployed_app:app"

[tool.flwr.app.config]
{plan_key} = ""
{campaign_key} = ""
"""
# What the SuperLink prints when it turns a node away, and the reason fedpath files it under.
REFUSALS = (
    (re.compile(r"No SuperNode found with the given public key"), "unregistered node key"),
    (re.compile(r"activate-node\]\[ApiError"), "node activation refused"),
    (re.compile(re.escape(superlink_guard.REFUSED)), "control API call from another machine"),
)
PEM_KEY = re.compile(r"-----BEGIN PUBLIC KEY-----(.+?)-----END PUBLIC KEY-----", re.DOTALL)


def flwr_cli(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


class Coordinator:
    """One coordinator: its SuperLink, its partners' registration, its campaign's runs."""

    def __init__(self, settings: CoordinatorSettings) -> None:
        self.settings = settings
        self.state = settings.state
        self.logs = self.state / LOGS
        self.flwr_home = self.state / "flwr-home"
        self.app = self.state / "app"
        self.superlink: subprocess.Popen[str] | None = None
        self.refusals: Counter[str] = Counter()
        self.run_attempts = 0
        self.http_port: int | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------ set-up
    @property
    def port(self) -> int:
        return self.settings.workspace.port

    @property
    def local_address(self) -> str:
        """Where the coordinator's own tools reach the SuperLink (its certificate names it)."""
        host = self.settings.superlink_host
        return f"{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{self.port}"

    def prepare(self) -> None:
        for folder in (self.state, self.logs, self.flwr_home, self.app):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.flwr_home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "{self.local_address}"\n'
            f'root-certificates = "{self.settings.workspace.ca_cert}"\n'
        )
        (self.app / "pyproject.toml").write_text(
            APP_PYPROJECT.format(
                version=fedpath.__version__, plan_key=PLAN_KEY, campaign_key=CAMPAIGN_KEY
            )
        )

    def env(self) -> dict[str, str]:
        return flower_env(self.flwr_home)

    # ------------------------------------------------------------------------ SuperLink
    def start_superlink(self) -> None:
        space = self.settings.workspace
        if not (self.state / DATABASE).is_file():
            (self.state / NODE_IDS).unlink(missing_ok=True)  # a new database knows no one
        command = [
            sys.executable,  # flower-superlink, its Control / Runtime APIs for this machine only
            "-m",
            superlink_guard.__name__,
            "--ssl-certfile",
            str(space.certificate),
            "--ssl-keyfile",
            str(space.private_key),
            "--ssl-ca-certfile",
            str(space.ca_cert),
            "--enable-supernode-auth",
            "--database",
            str(self.state / DATABASE),
            "--disable-runtime-dependency-installation",
            "--host",
            self.settings.superlink_host,
            "--port",
            str(self.port),
        ]
        self.superlink = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env()
        )
        threading.Thread(target=self._watch_superlink, args=(self.superlink,), daemon=True).start()
        log.info(
            "SuperLink starting on %s:%d (pid %d)",
            self.settings.superlink_host,
            self.port,
            self.superlink.pid,
            extra={"event": "superlink_started", "pid": self.superlink.pid},
        )
        self._await_port()
        self.write_service()

    def _await_port(self) -> None:
        host, _, port = self.local_address.rpartition(":")
        deadline = time.monotonic() + self.settings.startup_timeout
        while time.monotonic() < deadline:
            if self.superlink is not None and self.superlink.poll() is not None:
                raise FedpathError(
                    f"flower-superlink must keep running, got exit code {self.superlink.returncode}"
                    f"; see {self.logs / 'superlink.log'}"
                )
            try:
                with socket.create_connection((host, int(port)), timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        raise FedpathError(
            f"the SuperLink must answer on {self.local_address} within "
            f"{self.settings.startup_timeout:.0f} s, got no answer"
        )

    def _watch_superlink(self, process: subprocess.Popen[str]) -> None:
        """Copy the SuperLink's output to its log file; log every refusal it reports."""
        assert process.stdout is not None
        with (self.logs / "superlink.log").open("a") as sink:
            for line in process.stdout:
                sink.write(line)
                sink.flush()
                self._refusal(line)

    def _refusal(self, line: str) -> None:
        for pattern, reason in REFUSALS:
            if pattern.search(line):
                key = PEM_KEY.search(line.replace("\\n", ""))
                fingerprint = (
                    hashlib.sha256(key.group(1).encode()).hexdigest()[:16] if key else None
                )
                with self._lock:
                    self.refusals[reason] += 1
                log.warning(
                    "refused a connection: %s",
                    reason,
                    extra={"event": "refused", "reason": reason, "key_sha256": fingerprint},
                )
                self.write_service()
                return

    # ------------------------------------------------------------------------ partners
    def flwr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [flwr_cli("flwr"), *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )

    def register_partners(self) -> None:
        """``flwr supernode register`` every authorised key not registered yet.

        ``node-ids.json`` (beside the SuperLink's database) remembers who is: a restart with
        its database makes no ``flwr`` call at all, so it reaches its first round sooner. The
        calls that are needed run side by side: each is a fresh ``flwr`` process.
        """
        known = registered_nodes(self.state)
        missing = [p for p in self.settings.workspace.partners if p.name not in known]
        with ThreadPoolExecutor(max_workers=max(len(missing), 1)) as pool:
            results = pool.map(
                lambda p: self.flwr(
                    "supernode",
                    "register",
                    str(p.public_key),
                    CONNECTION,
                    "--name",
                    p.name,
                    "--format",
                    "json",
                ),
                missing,
            )
            for partner, result in zip(missing, results, strict=True):
                reply = _json_tail(result.stdout)
                if reply.get("success"):
                    known[partner.name] = int(reply["node-id"])
                    log.info(
                        "registered partner %s as node %s",
                        partner.name,
                        reply["node-id"],
                        extra={"event": "registered", "partner": partner.name},
                    )
                elif "already in use" in result.stdout + result.stderr:
                    log.info("partner %s was already registered", partner.name)
                else:
                    raise FedpathError(
                        f"flwr supernode register must accept partner {partner.name}'s key, "
                        f"got: {(result.stdout + result.stderr).strip()[-500:]}"
                    )
        (self.state / NODE_IDS).write_text(json.dumps(known, indent=1))
        self.write_service()

    # ------------------------------------------------------------------------ campaigns
    def run_campaign(self, stop: threading.Event) -> bool:
        """Launch ``flwr run`` until the campaign is finished; False if stopped first."""
        backoff = self.settings.backoff_initial
        while not stop.is_set():
            if self._finished():
                return True
            if self.superlink is None or self.superlink.poll() is not None:
                log.error("the SuperLink is down; starting it again", extra={"event": "restart"})
                self.start_superlink()
            code = self._flwr_run(stop)
            if stop.is_set():
                return False
            if self._finished():
                return True
            log.warning(
                "run ended (flwr run exit %s) before campaign %s finished; launching it again "
                "in %.0f s, it resumes from its last checkpoint",
                code,
                self.settings.campaign,
                backoff,
                extra={"event": "run_failed", "code": code},
            )
            stop.wait(backoff)
            backoff = min(backoff * 2, self.settings.backoff_max)
        return False

    def _finished(self) -> bool:
        status = read_status(self.state / CAMPAIGN)
        return status.get("campaign") == self.settings.campaign and status.get("state") == FINISHED

    def _flwr_run(self, stop: threading.Event) -> int | None:
        plan = write_plan(self.settings)
        self.run_attempts += 1
        self.write_service()
        command = [
            flwr_cli("flwr"),
            "run",
            str(self.app),
            CONNECTION,
            "--stream",
            "--run-config",
            f'{PLAN_KEY}="{plan}" {CAMPAIGN_KEY}="{self.settings.campaign}"',
        ]
        earlier = len(list(self.logs.glob(f"run-{self.settings.campaign}-*.log")))
        log_path = self.logs / f"run-{self.settings.campaign}-{earlier + 1:03d}.log"
        log.info(
            "flwr run for campaign %s (attempt %d), log in %s",
            self.settings.campaign,
            earlier + 1,
            log_path,
            extra={"event": "run_launched", "attempt": earlier + 1},
        )
        with log_path.open("w") as sink:
            process = subprocess.Popen(
                command, stdout=sink, stderr=subprocess.STDOUT, text=True, env=self.env()
            )
            while process.poll() is None:
                if stop.wait(1.0):
                    process.terminate()
                    process.wait(timeout=30)
                    return None
                if self.superlink is None or self.superlink.poll() is not None:
                    process.terminate()
                    process.wait(timeout=30)
                    return process.returncode
        return process.returncode

    # ------------------------------------------------------------------------ status
    def write_service(self) -> None:
        with self._lock:
            refusals = dict(self.refusals)
        node_ids = registered_nodes(self.state)
        write_status(
            self.state / SERVICE,
            {
                "address": self.settings.workspace.address,
                "superlink_up": self.superlink is not None and self.superlink.poll() is None,
                "superlink_pid": self.superlink.pid if self.superlink else None,
                "partners": {
                    p.name: {"node_id": node_ids.get(p.name), "index": p.index}
                    for p in self.settings.workspace.partners
                },
                "refusals": refusals,
                "run_attempts": self.run_attempts,
                "campaign": self.settings.campaign,
                "http_port": self.http_port,
            },
        )

    def start_http(self) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(
            (self.settings.http_host, self.settings.http_port), _handler(self)
        )
        server.daemon_threads = True
        self.http_port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name="fedpath-http", daemon=True).start()
        log.info(
            "health, metrics and status on http://%s:%d",
            self.settings.http_host,
            self.http_port,
            extra={"event": "http_started", "port": self.http_port},
        )
        return server

    def stop_superlink(self) -> None:
        if self.superlink is not None and self.superlink.poll() is None:
            self.superlink.terminate()
            try:
                self.superlink.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.superlink.kill()
        self.write_service()


def _handler(coordinator: Coordinator) -> type[BaseHTTPRequestHandler]:
    class Handler(ServiceHandler):
        server_version = "fedpath-coordinator"

        def do_GET(self) -> None:
            status = federation_status(coordinator.state)
            if self.path == "/health":
                up = coordinator.superlink is not None and coordinator.superlink.poll() is None
                body = {"status": "ok" if up else "superlink down", "superlink_up": up}
                self.send_json(HTTPStatus.OK if up else HTTPStatus.SERVICE_UNAVAILABLE, body)
            elif self.path == "/metrics":
                self.send_body(HTTPStatus.OK, status_metrics(status), PROMETHEUS_TEXT)
            elif self.path == "/status":
                self.send_json(HTTPStatus.OK, status)
            elif (asset := page_asset(self.path)) is not None:
                self.send_body(HTTPStatus.OK, *asset)
            else:
                self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path!r}"})

    return Handler


def _json_tail(text: str) -> dict[str, Any]:
    """The JSON object a ``flwr ... --format json`` call prints after its chatter."""
    start = text.find("{")
    try:
        return json.loads(text[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        return {}


def choose_campaign(state: Path, *, new: bool) -> str:
    """The campaign to run: the unfinished one, else a new one if asked, else "" (idle)."""
    path = state / CAMPAIGN_ID
    current = path.read_text().strip() if path.is_file() else None
    status = read_status(state / CAMPAIGN)
    finished = status.get("campaign") == current and status.get("state") == FINISHED
    if current is not None and not finished:
        return current
    if current is not None and not new:
        return ""
    state.mkdir(parents=True, exist_ok=True)
    campaign = f"c{int(current[1:]) + 1 if current else 1:04d}"
    path.write_text(campaign)
    return campaign


def run_coordinator(settings: CoordinatorSettings) -> None:
    """Start everything, run the campaign, then keep serving until SIGTERM / SIGINT."""
    coordinator = Coordinator(settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    coordinator.prepare()
    http = coordinator.start_http()
    try:
        coordinator.start_superlink()
        coordinator.register_partners()
        if not settings.campaign:
            log.info("no campaign to run: the last one finished", extra={"event": "idle"})
        elif coordinator.run_campaign(stop):
            log.info(
                "campaign %s finished", settings.campaign, extra={"event": "campaign_finished"}
            )
        stop.wait()
    finally:
        http.shutdown()
        coordinator.stop_superlink()
        log.info("coordinator stopped", extra={"event": "stopped"})
