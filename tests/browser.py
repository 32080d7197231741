"""A real headless browser for the dashboard tests (and scripts/screenshot_dashboard.py):
Debian's chromium (`make browser`) driven by Playwright's sync API.

Playwright cannot download its own browser here, so it launches /usr/bin/chromium. The
flags keep it on loopback: no background or component traffic, every other host
unresolvable and every proxied request sent to a port where nothing listens.

`Watch` records what a page did that a test must see: console errors, uncaught page
errors, dialogs (an `alert` run from a question would be one), and every request's URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Request

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",  # as root, chromium's sandbox refuses to start
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
# What chromium itself logs, as a console error, for a response it counts as failed: a
# 401 the page asked for and handled, or a refused connection (the server is down). The
# page's own script logs nothing; these come from the network layer.
NETWORK_ERROR = re.compile(
    r"^Failed to load resource: (the server responded with a status of (?P<status>\d{3})\b.*"
    r"|net::(?P<net>ERR_[A-Z_]+))$"
)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Chromium, headless, on loopback only; closed (and Playwright stopped) afterwards."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise FileNotFoundError(f"no browser at {CHROMIUM}: run make browser (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watch:
    """Everything a page logged, threw, popped up and requested, since `attach`."""

    console_errors: list[str] = field(default_factory=list)
    network_errors: list[tuple[str, str]] = field(default_factory=list)  # (URL, status or net::ERR_...)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    allowed: set[str] = field(default_factory=set)  # network errors a test provoked on purpose

    @classmethod
    def attach(cls, page: Page) -> Watch:
        watch = cls()
        page.on("console", watch._console)
        page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
        page.on("dialog", watch._dialog)
        page.on("request", watch._request)
        return watch

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        network = NETWORK_ERROR.match(message.text)
        if network is not None:
            self.network_errors.append((message.location.get("url", ""), network["status"] or network["net"]))
        else:
            self.console_errors.append(message.text)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def off_site(self, origin: str) -> list[str]:
        """The requests that went anywhere but `origin` (scheme://host:port)."""
        want = urlsplit(origin)
        return [
            url
            for url in self.requests
            if (urlsplit(url).scheme, urlsplit(url).netloc) != (want.scheme, want.netloc)
        ]
