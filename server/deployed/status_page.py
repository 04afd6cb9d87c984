"""The coordinator's status page: four static files the coordinator serves itself.

The page is plain HTML, CSS and JavaScript that reads ``/status`` every few seconds and draws
it (progress, partners, curves as inline SVG, ε, champion / challenger, graded alerts). No
framework, no CDN and no build step: the coordinator may run where nothing outside is reachable,
and its Content-Security-Policy (``default-src 'self'``) refuses any other origin anyway.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

PAGE = Path(__file__).with_name("page")
ASSETS = {  # path -> (file in PAGE, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/status.js": ("status.js", "text/javascript; charset=utf-8"),
    "/status.css": ("status.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}


def page_asset(path: str) -> tuple[str, str] | None:
    """``(text, content type)`` of the page file served at ``path``; None for any other path."""
    entry = ASSETS.get(path.split("?", 1)[0])
    return None if entry is None else (_read(entry[0]), entry[1])


@cache
def _read(name: str) -> str:
    return (PAGE / name).read_text()
