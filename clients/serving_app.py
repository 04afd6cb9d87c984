"""The prediction service as an ASGI app (Starlette): its routes, its bearer token, its refusals.

Every answer but ``/metrics`` (Prometheus text) is JSON, refusals included: ``{"error": reason}``
for a wrong path (404), a wrong method (405), a missing token (401) or a bad request (4xx from
``parse_request``). The work behind a route — a model (re)load, a prediction — runs in a worker
thread, so a slow prediction never stalls the event loop that reads everyone else's requests.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from http import HTTPStatus
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fedpath.clients.serving import PredictionService, RequestError, answer, parse_request
from fedpath.telemetry import PROMETHEUS_TEXT

log = logging.getLogger(__name__)


def json_response(status: int, payload: dict[str, Any], **headers: str) -> Response:
    """JSON with non-ASCII escaped: a reason quoting a client's lone surrogate still encodes."""
    return Response(json.dumps(payload), status, headers, media_type="application/json")


def build_app(service: PredictionService, token: str | None) -> ASGIApp:
    """``/health``, ``/metrics``, ``POST /predict``; every one behind ``token`` when given."""

    def health(request: Request) -> Response:
        return json_response(*service.health())

    def metrics(request: Request) -> Response:
        return Response(service.metrics_text(), media_type=PROMETHEUS_TEXT)

    async def predict(request: Request) -> Response:
        """Answer, counting the answer before it is sent: a client that reads /metrics right
        after its reply must find its request there."""
        started = time.perf_counter()
        try:
            body = await _body(request, service.settings.max_body_bytes)
            status, payload = await run_in_threadpool(_predict, service, body)
        except RequestError as error:
            status, payload = error.status, {"error": str(error)}
        review = bool(payload.get("needs_review", False))
        service.metrics.record(status, time.perf_counter() - started, review)
        service.metrics.sync(service.source)
        return json_response(status, payload)

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/predict", predict, methods=["POST"]),
        ],
        exception_handlers={HTTPException: _refusal},
    )
    return AccessLog(BearerToken(app, token) if token else app)


async def _body(request: Request, limit: int) -> bytes:
    """The body, refused unread when it announces more than ``limit`` bytes; the HTTP parser
    never hands over more than the announced length."""
    length = request.headers.get("content-length", "")
    if not (length.isascii() and length.isdigit()):
        raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length must be given")
    if int(length) > limit:
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"body must be at most {limit} bytes, got {length}",
        )
    try:
        return await request.body()
    except ClientDisconnect:  # the client left, or its read timeout closed it: no traceback
        raise RequestError(
            HTTPStatus.BAD_REQUEST, "body must arrive whole, got a closed connection"
        ) from None


def _predict(service: PredictionService, body: bytes) -> tuple[int, dict[str, Any]]:
    try:
        served = service.source.current()
        if served is None:
            raise RequestError(
                HTTPStatus.SERVICE_UNAVAILABLE, "no promoted model has been published yet"
            )
        request = parse_request(body, service.hasher, service.settings)
        payload, _ = answer(served, request, service.catalog, service.settings, service.max_len)
    except RequestError as error:
        return error.status, {"error": str(error)}
    except Exception:  # a bug answers 500; the server stays up
        log.exception("prediction failed", extra={"event": "predict_failed"})
        return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"}
    return HTTPStatus.OK, payload


async def _refusal(request: Request, error: Exception) -> Response:
    """Starlette's own 404 / 405, as JSON like every other refusal (``Allow`` kept)."""
    assert isinstance(error, HTTPException)
    path = request.url.path
    if error.status_code == HTTPStatus.NOT_FOUND:
        reason = f"no such path {path!r}"
    elif error.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        reason = f"{path} takes {(error.headers or {}).get('Allow', 'another method')}"
    else:
        reason = error.detail
    return json_response(error.status_code, {"error": reason}, **(error.headers or {}))


class BearerToken:
    """Refuses (401) any request without ``Authorization: Bearer <token>``; the comparison
    takes the same time whatever the guess, so a caller cannot find the token byte by byte."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                log.warning(
                    "refused a request without the serving token",
                    extra={
                        "event": "unauthorized",
                        "client": _client(scope),
                        "path": scope["path"],
                    },
                )
                refusal = json_response(
                    HTTPStatus.UNAUTHORIZED,
                    {"error": "Authorization must be 'Bearer <the bundle's serving.token>'"},
                    **{"WWW-Authenticate": "Bearer"},
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class AccessLog:
    """One debug line per answered request, with its fields as JSON fields (uvicorn's own
    access log is off: its lines are prose)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 0

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.debug(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "event": "request",
                    "client": _client(scope),
                    "status": status,
                    "seconds": round(time.perf_counter() - started, 6),
                },
            )


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"
