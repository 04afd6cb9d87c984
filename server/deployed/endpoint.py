"""The coordinator's request handler (``/health``, ``/metrics``, ``/status``).

The coordinator serves its few small paths from the standard library's server; how a reply goes
out — a body with its length, JSON, the Prometheus text type — and where the access log goes are
written once here. (A partner's ``/predict`` faces its shop's traffic and runs on uvicorn:
``fedpath.clients.serving_server``.)
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler
from typing import Any


class ServiceHandler(BaseHTTPRequestHandler):
    """Replies with a ``Content-Length`` and logs requests at debug, not to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        # The defining module's logger, so a service's access lines stay under its own name.
        logger = logging.getLogger(type(self).__module__)
        logger.debug("%s " + format, self.address_string(), *args)

    def send_body(self, status: int, body: str, content_type: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, status: int, payload: dict[str, Any]) -> None:
        self.send_body(status, json.dumps(payload), "application/json")
