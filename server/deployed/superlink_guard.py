"""``flower-superlink`` with its Control and Runtime APIs answering the coordinator's machine only.

Flower 1.42 serves the Fleet, Control and Runtime APIs over one HTTPS port, and without Flower's
enterprise account authentication the Control API asks for nothing but TLS: anyone holding the
federation's ``ca.crt`` who reaches the port could ``flwr supernode register`` a key of their
own, join, and receive the global model. Partners only ever need the Fleet API (``/v1/fleet/``);
the coordinator's own ``flwr`` calls and the ServerApp reach the SuperLink from this machine.
So the SuperLink's HTTP app is wrapped in an ASGI guard that serves a request for any other
path only to a peer on loopback (or, when the SuperLink binds one specific address, from that
address: a connection from it is this machine's own) and refuses the rest with 403, logged.

The coordinator starts ``python -m fedpath.server.deployed.superlink_guard`` with
flower-superlink's own arguments; everything else (TLS, node authentication, database) is
Flower's unchanged.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from logging import WARNING
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PREFIXES = ("/v1/fleet/",)  # what a partner's SuperNode calls
PUBLIC_PATHS = frozenset({"/health"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})
REFUSED = "fedpath guard refused"  # the coordinator counts SuperLink lines that carry this


def is_public(path: str) -> bool:
    """Whether ``path`` is served to any peer (node authentication guards it, not this).

    A path with a dot segment is never public: ``/v1/fleet/../control/...`` must not pass.
    """
    if "/." in path:
        return False
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def from_this_machine(peer: str | None, bound_host: str) -> bool:
    """Whether a connection from ``peer`` comes from the coordinator's own machine.

    Loopback always; the SuperLink's bound address too when it binds one specific address
    (the coordinator's tools then reach it there). Never a peer we cannot name.
    """
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return True
    return bound_host not in WILDCARDS and peer == bound_host


class LoopbackControl:
    """ASGI middleware: Fleet API for everyone, every other path for this machine only."""

    def __init__(self, app: ASGIApp, bound_host: str) -> None:
        self.app = app
        self.bound_host = bound_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        peer = (scope.get("client") or (None, None))[0]
        if from_this_machine(peer, self.bound_host):
            await self.app(scope, receive, send)
            return
        _log_refusal(scope["path"], peer)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps(
            {
                "error": f"{scope['path']} must be called from the coordinator's machine "
                f"(loopback), got a call from {peer}; partners use /v1/fleet/ only"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _log_refusal(path: str, peer: str | None) -> None:
    # Flower's logger: the line lands in the SuperLink's output, which the coordinator reads.
    from flwr.common.logger import log

    log(WARNING, "%s %s from %s: not the coordinator's machine", REFUSED, path, peer)


def main() -> None:
    """Run ``flower-superlink`` (same arguments) with its HTTP app inside ``LoopbackControl``.

    Flower's CLI builds its app through ``flwr.superlink.main.create_app``; that one name is
    replaced by a version that wraps the app, so parsing, TLS, logging and uvicorn's settings all
    stay Flower's own.
    """
    from flwr.superlink import main as superlink_main
    from flwr.superlink.cli.flower_superlink import flower_superlink

    create_app = superlink_main.create_app

    def guarded_app(config: Any, lifespan_class: Any = None) -> LoopbackControl:
        return LoopbackControl(create_app(config, lifespan_class), str(config.host))

    superlink_main.create_app = guarded_app  # type: ignore[assignment]
    flower_superlink()


if __name__ == "__main__":
    main()
