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
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fedpath.clients.serving import PredictionService
from fedpath.clients.serving_app import build_app
from fedpath.errors import ConfigError

log = logging.getLogger(__name__)

GRACE_S = 5.0  # seconds in-flight requests get to finish when the server stops
STARTUP_S = 30.0  # seconds uvicorn gets to start serving on the bound socket


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
class ServingServer:
    """A running server; ``server_address`` is (host, bound port), as socketserver's."""

    server_address: tuple[str, int]
    uvicorn_server: uvicorn.Server
    thread: threading.Thread

    def shutdown(self) -> None:
        """Stop accepting, give in-flight requests ``GRACE_S`` seconds, and wait for the end."""
        self.uvicorn_server.should_exit = True
        self.thread.join()


def start_server(service: PredictionService, token: str | None = None) -> ServingServer:
    """Bind and serve in a daemon thread; every request needs ``token`` when it is given.

    The socket is bound here, so a taken port fails in the caller, and port 0 is known at once.
    """
    settings = service.settings
    if token is None and not is_loopback(settings.host):
        raise ConfigError(
            f"serving.host must be a loopback address when no token is given, got {settings.host!r}"
        )
    sock = _listen(settings.host, settings.port, settings.backlog)
    config = uvicorn.Config(
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
    server = uvicorn.Server(config)
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
    address = sock.getsockname()[:2]
    log.info(
        "serving predictions on http://%s:%d%s",
        *address,
        " (bearer token required)" if token else "",
        extra={"event": "serving_started", "token_required": token is not None},
    )
    return ServingServer(address, server, thread)


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
