"""The dashboard at `/`: one static page (static/dashboard.html, .css, .js) that reads
`/metrics` with the key the page was opened with, and draws its charts as inline SVG.

The page loads nothing but these files: no CDN, no fonts, no framework, so it works
offline. Its Content-Security-Policy says so to the browser too: scripts, styles and
requests from this server only, no inline script, so even a question that reached the
page as markup could not run (the script puts every text in with textContent anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

STATIC = Path(__file__).parent / "static"
# The files the page is made of, by the path each is served at.
ASSETS = {
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# The files change with the package, not while it runs: the browser asks again each time
# (a 304 when unchanged), so an upgrade never leaves an old script under a new page.
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def mount(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        headers = {**HEADERS, "Content-Security-Policy": POLICY, "Referrer-Policy": "no-referrer"}
        return FileResponse(STATIC / "dashboard.html", media_type="text/html; charset=utf-8", headers=headers)

    for path, (name, media_type) in ASSETS.items():
        app.add_api_route(path, _asset(name, media_type), methods=["GET"], include_in_schema=False)


def _asset(name: str, media_type: str) -> Callable[[], FileResponse]:
    def serve() -> FileResponse:
        return FileResponse(STATIC / name, media_type=media_type, headers=HEADERS)

    return serve
