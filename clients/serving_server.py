"""Serving the prediction app over HTTP: uvicorn in a daemon thread, on a socket bound here.

uvicorn brings what the standard library's threaded server lacked: a listen backlog that queues
bursts instead of resetting them, an event loop on which a slow client costs a socket rather than
a thread, idle keep-alive connections closed, a cap on open connections (503 beyond it), and a
400 for malformed HTTP. Three things are added here:

* a deadline on *receiving* each request (``ReadDeadline``): uvicorn closes idle keep-alive
  connections, but a client that sends half a request would hold its connection forever;
* the token rule: off loopback, ``/predict`` answers only callers holding the bundle's
  ``serving.token`` (``serving_token``), and a server without one refuses to start there;
* uvicorn's own log lines as JSON, like the rest of the daemon's (``_log_config``).

With ``serving.workers`` = 1 the server is a thread of the daemon's process. With more, it is a
pool of that many processes (``WorkerPool``), each running the same app on the one socket bound
here (the kernel hands each connection to one of them): Python runs one request at a time per
process, so this is how /predict uses several cores. Each worker loads the promoted model from
the registry itself and follows promotions as the single server does; ``/metrics`` sums every
worker (``prometheus_client``'s multiprocess mode), and ``/health`` reports the daemon's checks
(its SuperNode), which the pool re-evaluates every ``reload_every`` seconds and hands over in a
small file, since they are the daemon's objects, not the workers'.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import multiprocessing
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fedpath.clients.serving import PredictionService
from fedpath.clients.serving_app import build_app
from fedpath.clients.serving_metrics import MULTIPROC_ENV
from fedpath.durable import atomic_write
from fedpath.errors import ConfigError
from fedpath.telemetry import configure_json_logging

log = logging.getLogger(__name__)

GRACE_S = 5.0  # seconds in-flight requests get to finish when the server stops
STARTUP_S = 30.0  # seconds uvicorn gets to start serving on the bound socket
ORPHAN_POLL_S = 1.0  # seconds between a worker's checks that the daemon still lives


def is_loopback(host: str) -> bool:
    """Only this machine can connect; a host name other than ``localhost`` may resolve anywhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serving_token(host: str, token_file: Path) -> str | None:
    """The token a server bound to ``host`` requires: none on loopback, where only this machine
    can call it; off loopback the bundle's, and a refusal when the bundle has none (bundles
    provisioned before the token existed), rather than serving predictions to anyone."""
    if is_loopback(host):
        return None
    try:
        token = token_file.read_text().strip()
    except FileNotFoundError:
        token = ""
    if not token:
        raise ConfigError(
            f"serving.host {host!r} is not loopback, so {token_file} must hold the bearer "
            "token callers present (fedpath provision writes it), got no token"
        )
    return token


class ReadDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol with ``read_timeout`` seconds to receive each request.

    The clock starts when the connection opens (for its first request) or when a later request
    on it begins, and stops when the request is complete; past it the client gets a 408 (if
    nothing was answered yet) and the connection is closed.
    """

    def __init__(self, *args: Any, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.deadline is None:  # the first request keeps the clock of its connection
            self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self.deadline = self.loop.call_later(self.read_timeout, self._expire)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _expire(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        log.info(
            "closed a connection that sent no whole request in %.1f s",
            self.read_timeout,
            extra={"event": "read_timeout", "client": client},
        )
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
        self.transport.close()


@dataclass
class ThreadServer:
    """A server in a thread of this process; ``server_address`` is (host, bound port)."""

    server_address: tuple[str, int]
    uvicorn_server: uvicorn.Server
    thread: threading.Thread

    def shutdown(self) -> None:
        """Stop accepting, give in-flight requests ``GRACE_S`` seconds, and wait for the end."""
        self.uvicorn_server.should_exit = True
        self.thread.join()


class WorkerPool:
    """``settings.workers`` processes serving one socket; ``server_address`` as above."""

    def __init__(self, service: PredictionService, token: str | None, sock: socket.socket) -> None:
        self.service = service
        self.sock = sock
        self.server_address = sock.getsockname()[:2]
        self.folder = Path(tempfile.mkdtemp(prefix="fedpath-serving-"))
        self.health_file = self.folder / "health.json"
        (self.folder / "metrics").mkdir()
        self.stop = threading.Event()
        self._write_health()
        context = multiprocessing.get_context("spawn")  # no fork of the daemon's threads
        ready = context.Queue()
        names = sorted(service.checks)
        log_level = logging.getLogger("fedpath").getEffectiveLevel()
        self.processes = [
            context.Process(
                target=_worker,
                args=(service, token, sock, self.health_file, names, ready, log_level),
                name=f"fedpath-serving-{i}",
                daemon=True,
            )
            for i in range(service.settings.workers)
        ]
        worker_env = {  # read by the spawned workers, at their start
            MULTIPROC_ENV: str(self.folder / "metrics"),
            "OMP_NUM_THREADS": "1",  # one torch thread per worker: the pool is the parallelism
        }
        saved = {name: os.environ.get(name) for name in worker_env}
        os.environ.update(worker_env)
        try:
            for process in self.processes:
                process.start()
        finally:
            for name, value in saved.items():
                if value is None:
                    del os.environ[name]
                else:
                    os.environ[name] = value
        self._await(ready)
        self.health = threading.Thread(target=self._watch, name="fedpath-serving-health")
        self.health.daemon = True
        self.health.start()

    def _await(self, ready: Any) -> None:
        """Every worker has loaded the promoted model (if any) and is about to accept."""
        started = 0
        for _ in range(int(STARTUP_S / 0.1)):
            while not ready.empty():
                ready.get()
                started += 1
            if started == len(self.processes):
                return
            if any(p.exitcode is not None for p in self.processes):
                break
            self.stop.wait(0.1)
        self.shutdown()
        raise RuntimeError(
            f"{len(self.processes)} /predict workers must start within {STARTUP_S} s, {started} did"
        )

    def _write_health(self) -> None:
        verdicts = {name: check() for name, check in self.service.checks.items()}
        atomic_write(self.health_file, json.dumps(verdicts, default=str).encode())

    def _watch(self) -> None:
        while not self.stop.wait(max(self.service.settings.reload_every, 0.2)):
            try:
                self._write_health()
            except Exception:  # a failing check must not end the watch
                log.exception("health checks failed", extra={"event": "health_check_failed"})

    def shutdown(self) -> None:
        """SIGTERM every worker (uvicorn's graceful stop: ``GRACE_S`` for in-flight requests),
        then kill what is left, and remove the pool's folder."""
        self.stop.set()
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(GRACE_S + 5)
            if process.is_alive():
                process.kill()
                process.join()
        self.sock.close()
        shutil.rmtree(self.folder, ignore_errors=True)


ServingServer = ThreadServer | WorkerPool


def start_server(service: PredictionService, token: str | None = None) -> ServingServer:
    """Bind and serve (in a thread, or in ``settings.workers`` processes); every request needs
    ``token`` when it is given.

    The socket is bound here, so a taken port fails in the caller, and port 0 is known at once.
    """
    settings = service.settings
    if token is None and not is_loopback(settings.host):
        raise ConfigError(
            f"serving.host must be a loopback address when no token is given, got {settings.host!r}"
        )
    sock = _listen(settings.host, settings.port, settings.backlog)
    server: ServingServer
    if settings.workers > 1:
        server = WorkerPool(service, token, sock)
    else:
        server = _serve_in_thread(service, token, sock)
    log.info(
        "serving predictions on http://%s:%d%s (%d worker(s))",
        *server.server_address,
        " (bearer token required)" if token else "",
        settings.workers,
        extra={
            "event": "serving_started",
            "token_required": token is not None,
            "workers": settings.workers,
        },
    )
    return server


def _serve_in_thread(
    service: PredictionService, token: str | None, sock: socket.socket
) -> ThreadServer:
    server = uvicorn.Server(_config(service, token))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fedpath-serving", daemon=True
    )
    thread.start()
    for _ in range(int(STARTUP_S / 0.01)):
        if server.started or not thread.is_alive():
            break
        thread.join(0.01)
    if not server.started:
        server.should_exit = True
        sock.close()
        raise RuntimeError(f"the /predict server must start within {STARTUP_S} s, it did not")
    return ThreadServer(sock.getsockname()[:2], server, thread)


def _worker(
    service: PredictionService,
    token: str | None,
    sock: socket.socket,
    health_file: Path,
    checks: list[str],
    ready: Any,
    log_level: int,
) -> None:
    """One worker process: JSON logs like the daemon's, the model loaded before it accepts, the
    daemon's checks read from ``health_file``; SIGTERM stops it, and so does the daemon's end."""
    configure_json_logging(log_level)
    service.checks = {name: partial(_handed_check, health_file, name) for name in checks}
    service.source.current()
    server = uvicorn.Server(_config(service, token))
    threading.Thread(
        target=_stop_when_orphaned, args=(server, os.getppid()), name="fedpath-parent", daemon=True
    ).start()
    ready.put(os.getpid())
    server.run(sockets=[sock])


def _stop_when_orphaned(server: uvicorn.Server, parent: int) -> None:
    """Stop serving once the daemon is gone, however it went: a SIGKILLed daemon runs no
    ``shutdown``, and its workers would go on answering with a model nobody updates and holding
    its port. The daemon's death re-parents the worker, which changes ``getppid``."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_POLL_S)
    log.warning(
        "the partner daemon is gone; this /predict worker stops", extra={"event": "orphaned"}
    )
    server.should_exit = True


def _handed_check(health_file: Path, name: str) -> tuple[bool, Any]:
    """The pool's latest verdict of one of the daemon's checks."""
    try:
        healthy, details = json.loads(health_file.read_text())[name]
    except (OSError, ValueError, KeyError) as error:
        return False, {"error": f"no verdict from the daemon: {error}"}
    return bool(healthy), details


def _config(service: PredictionService, token: str | None) -> uvicorn.Config:
    settings = service.settings
    return uvicorn.Config(
        build_app(service, token),
        http=partial(ReadDeadline, read_timeout=settings.read_timeout),  # type: ignore[arg-type]
        lifespan="off",
        access_log=False,
        log_config=_log_config(),
        backlog=settings.backlog,
        timeout_keep_alive=settings.keep_alive,  # type: ignore[arg-type]
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=GRACE_S,  # type: ignore[arg-type]
        server_header=False,
    )


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=backlog)


def _log_config() -> dict[str, Any]:
    """uvicorn's loggers (warnings and errors: malformed HTTP, a failing app) as JSON lines on
    stderr. A fresh dict per call: ``logging.config`` consumes the one it is given."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "fedpath.telemetry.JsonFormatter"}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {"uvicorn": {"handlers": ["json"], "level": "WARNING", "propagate": False}},
    }
