"""The dashboard of `thrift serve` in a real headless chromium (tests/browser.py), against a
real `thrift serve` (the serve_server fixture) filled by real `thrift ask` processes on the
same THRIFT_HOME.

What the page shows is read from its elements' data-value (the exact number drawn) and
text, and compared with GET /metrics and `thrift stats --json`. Every test's page is
watched: no console error, no uncaught error, no dialog and no request off loopback, or
the test fails in its teardown. Chromium logs a failed response (a 401, a refused
connection) as a console error of its own; only a test that provokes one allows it, and
checks it was that and nothing else.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browser import Watch, chromium

if TYPE_CHECKING:
    from conftest import FakeLLM, Ran
    from playwright.sync_api import Browser, Page
    from serve_servers import ServeServer

REFRESH_S = 2.0  # the page's REFRESH_MS
LIVE_WAIT_MS = int((2 * REFRESH_S + 2.0) * 1000)  # two refreshes and slack for a loaded machine
FIRST = "How do I learn to code quickly?"
PARAPHRASE = "How can I learn to code fast?"
MARKUP = "<img src=x onerror=alert(1)> what does <b>this</b> do?"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module, not session: while Playwright's sync API runs, the main thread counts as
    # inside an event loop, and a later module's asyncio.run (Textual's pilot) would fail.
    with chromium() as launched:
        yield launched


@pytest.fixture
def tab(browser: Browser, serve_server: ServeServer) -> Iterator[tuple[Page, Watch]]:
    """A new page (1280x900) on a fresh context, watched; clean at the end or the test fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    watch = Watch.attach(page)
    yield page, watch
    context.close()
    assert watch.console_errors == []
    assert watch.page_errors == []
    assert watch.dialogs == []
    assert [(url, why) for url, why in watch.network_errors if why not in watch.allowed] == []
    assert watch.off_site(serve_server.url) == []
    assert watch.requests, "the page requested nothing: the watch saw nothing"


def ask(thrift: Callable[..., Ran], question: str, command: list[str]) -> dict[str, Any]:
    ran = thrift("ask", question, "--json", "--", *command)
    assert ran.code == 0, ran.stderr
    return ran.report


def metrics(server: ServeServer, since: str | None = None) -> dict[str, Any]:
    query = "" if since is None else f"?since={since}"
    request = urllib.request.Request(f"{server.url}/metrics{query}", headers={"X-API-Key": server.key})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def open_dashboard(page: Page, server: ServeServer, key: str | None = None) -> None:
    page.goto(f"{server.url}/#key={key or server.key}")
    page.wait_for_selector("[data-testid=lookups][data-value]")


def shown(page: Page) -> dict[str, str]:
    """Every figure's exact number, by its data-testid (the first of each)."""
    return page.evaluate(
        """() => {
            const out = {};
            for (const node of document.querySelectorAll('[data-testid][data-value]'))
                if (!(node.dataset.testid in out)) out[node.dataset.testid] = node.dataset.value;
            return out;
        }"""
    )


def texts(page: Page, testid: str) -> list[str]:
    return page.locator(f"[data-testid={testid}]").all_text_contents()


def wait_for_lookups(page: Page, n: int, timeout: int = LIVE_WAIT_MS) -> None:
    page.wait_for_function(
        "n => document.querySelector('[data-testid=lookups]').dataset.value === String(n)",
        arg=n,
        timeout=timeout,
    )


def test_the_figures_are_those_of_metrics_and_thrift_stats(
    tab: tuple[Page, Watch], serve_server: ServeServer, thrift: Callable[..., Ran], llm_cli: list[str]
) -> None:
    page, _ = tab
    assert ask(thrift, FIRST, llm_cli)["tier"] == "miss"
    assert ask(thrift, FIRST, llm_cli)["tier"] == "exact"
    assert ask(thrift, PARAPHRASE, llm_cli)["tier"] == "semantic"
    open_dashboard(page, serve_server)
    assert page.get_by_test_id("dashboard").get_attribute("data-window") == "all"
    figures = shown(page)
    served = metrics(serve_server)
    ran = thrift("stats", "--json")
    assert ran.code == 0, ran.stderr
    printed = json.loads(ran.stdout)

    for source in (served["stats"], printed):
        assert int(figures["lookups"]) == source["lookups"] == 3
        assert int(figures["hits"]) == source["hits"] == 2
        assert float(figures["hit-rate"]) == source["hit_rate"]
        assert int(figures["tokens-saved"]) == source["tokens_saved"] > 0
        assert float(figures["money-saved"]) == source["money_saved"]["usd"]
        assert float(figures["time-saved"]) == source["time_saved"]["seconds"]
        assert int(figures["exact-hits"]) == source["hits_by_tier"]["exact"] == 1
        assert int(figures["semantic-hits"]) == source["hits_by_tier"]["semantic"] == 1
        assert int(figures["misses"]) == source["misses"]["total"] == 1
        assert int(figures["entries"]) == source["entries"]["total"] == 1
        assert float(figures["p50-exact"]) == source["latency_ms"]["exact"]["p50"]
        assert float(figures["p99-semantic"]) == source["latency_ms"]["semantic"]["p99"]
        assert [q["question"] for q in source["top_questions"]] == texts(page, "top-question") == [FIRST]
    assert served["total_queries"] == 3 and served["cost_saved"] == printed["money_saved"]["usd"]
    assert page.get_by_test_id("hit-rate").text_content() == "66.7%"
    assert page.get_by_test_id("top-hits").text_content() == "2"
    assert page.get_by_test_id("time-estimated").is_hidden()  # both hits were timed against their miss

    # The feed, newest first, and what the paraphrase matched.
    rows = page.get_by_test_id("lookup")
    assert texts(page, "lookup-question") == [PARAPHRASE, FIRST, FIRST]
    assert [rows.nth(i).locator("td.tier").get_attribute("data-value") for i in range(3)] == [
        "semantic",
        "exact",
        "miss",
    ]
    assert FIRST in (rows.nth(0).locator(".matched").text_content() or "")
    # The charts: one bucket with lookups in it, and a histogram bar per lookup tier seen.
    assert page.locator("#timeline svg rect.rate").count() >= 1
    assert page.locator("#latency svg rect.exact").count() == 1
    assert page.locator("#latency svg rect.semantic").count() == 1
    assert page.get_by_test_id("empty").is_hidden()

    # A window: the page asks for it, and shows what /metrics says for it.
    with page.expect_response(lambda r: "/metrics?since=15m" in r.url):
        page.get_by_test_id("window").select_option("15m")
    page.wait_for_selector("[data-testid=dashboard][data-window='15m']", state="attached")
    windowed = metrics(serve_server, since="15m")["stats"]
    assert windowed["since"] is not None
    assert int(shown(page)["lookups"]) == windowed["lookups"] == 3


def test_time_saved_is_marked_estimated_when_a_hit_had_no_timed_miss(
    tab: tuple[Page, Watch],
    serve_server: ServeServer,
    thrift: Callable[..., Ran],
    fake_llm: FakeLLM,
    tmp_path: Path,
) -> None:
    page, _ = tab
    pairs = tmp_path / "answers.jsonl"
    pairs.write_text(
        json.dumps({"question": "What is a semantic cache?", "answer": "A cache of meanings."}) + "\n"
    )
    ran = thrift("import", str(pairs), "--", *fake_llm.command())
    assert ran.code == 0, ran.stderr
    assert ask(thrift, "What is a semantic cache?", fake_llm.command())["tier"] == "exact"
    open_dashboard(page, serve_server)
    saved = metrics(serve_server)["stats"]["time_saved"]
    assert saved["estimated_hits"] + saved["unknown_hits"] == 1  # imported: no call of its own was timed
    assert page.get_by_test_id("time-estimated").is_visible()
    assert page.get_by_test_id("time-estimated").text_content() == "est."
    assert float(shown(page)["time-saved"]) == saved["seconds"]
    assert not fake_llm.calls_file.exists() or fake_llm.calls_file.read_text() == ""


def test_an_empty_cache_says_how_to_begin_then_a_new_ask_shows_live(
    tab: tuple[Page, Watch], serve_server: ServeServer, thrift: Callable[..., Ran], fake_llm: FakeLLM
) -> None:
    page, _ = tab
    open_dashboard(page, serve_server)
    assert shown(page)["lookups"] == "0"
    hint = page.get_by_test_id("empty")
    assert hint.is_visible()
    assert 'thrift ask "' in (hint.text_content() or "")
    assert "every 2 s" in (page.get_by_test_id("status").text_content() or "")

    question = "Which port does thrift serve listen on?"
    ask(thrift, question, fake_llm.command())
    asked = time.monotonic()
    wait_for_lookups(page, 1)
    # within one refresh of the ask (and the slack of a fetch and a redraw)
    assert time.monotonic() - asked <= REFRESH_S + 1.5
    assert texts(page, "lookup-question") == [question]
    assert hint.is_hidden()
    ask(thrift, question, fake_llm.command())
    wait_for_lookups(page, 2)
    assert shown(page)["exact-hits"] == "1"
    assert texts(page, "top-question") == [question]
    assert "updated " in (page.get_by_test_id("status").text_content() or "")


def test_a_question_with_markup_is_shown_as_text(
    tab: tuple[Page, Watch], serve_server: ServeServer, thrift: Callable[..., Ran], fake_llm: FakeLLM
) -> None:
    page, watch = tab
    ask(thrift, MARKUP, fake_llm.command())
    ask(thrift, MARKUP, fake_llm.command())
    open_dashboard(page, serve_server)
    assert texts(page, "lookup-question") == [MARKUP, MARKUP]
    assert texts(page, "top-question") == [MARKUP]
    assert page.locator("main img, main b").count() == 0
    page.wait_for_timeout(300)  # an onerror would have fired by now
    assert watch.dialogs == []
    assert not any(url.endswith("/x") for url in watch.requests)


def test_at_phone_width_the_page_does_not_scroll_sideways(
    browser: Browser, serve_server: ServeServer, thrift: Callable[..., Ran], fake_llm: FakeLLM
) -> None:
    long_word = "supercalifragilistic" * 8  # no place to break it but anywhere
    ask(
        thrift,
        f"Why is {long_word} so long, and does the cache wrap it on a small screen?",
        fake_llm.command(),
    )
    ask(thrift, "What is semantic caching?", fake_llm.command())
    ask(thrift, "What is semantic caching?", fake_llm.command())
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    watch = Watch.attach(page)
    try:
        open_dashboard(page, serve_server)
        assert shown(page)["lookups"] == "3"
        width, inner = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
        assert inner == 375
        assert width <= inner
        # The figures stack: two a row at most, each inside the screen.
        boxes = [page.locator(".figure").nth(i).bounding_box() for i in range(6)]
        assert all(box is not None and box["x"] >= 0 and box["x"] + box["width"] <= inner for box in boxes)
        assert len({box["y"] for box in boxes if box is not None}) >= 3
    finally:
        context.close()
    assert watch.console_errors == [] and watch.page_errors == [] and watch.network_errors == []
    assert watch.off_site(serve_server.url) == []


def test_without_a_key_the_page_asks_for_one_and_refuses_a_wrong_one(
    tab: tuple[Page, Watch], serve_server: ServeServer
) -> None:
    page, watch = tab
    page.goto(serve_server.url + "/")
    form = page.get_by_test_id("key-form")
    form.wait_for(state="visible")
    assert page.get_by_test_id("dashboard").is_hidden()
    assert page.get_by_test_id("hit-rate").is_hidden()
    assert not any("/metrics" in url for url in watch.requests)  # no key, no request

    # A wrong key: the server says 401, the page asks again and shows no figure.
    watch.allowed.add("401")
    page.get_by_test_id("key-input").fill("not-the-key-of-this-server")
    page.get_by_test_id("key-submit").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=key-message]').textContent.includes('401')"
    )
    assert form.is_visible()
    assert page.get_by_test_id("hit-rate").is_hidden()
    assert [why for _, why in watch.network_errors] == ["401"]
    assert all(url.endswith("/metrics") for url, _ in watch.network_errors)

    page.get_by_test_id("key-input").fill(serve_server.key)
    page.get_by_test_id("key-submit").click()
    page.get_by_test_id("hit-rate").wait_for(state="visible")
    assert shown(page)["lookups"] == "0"
    assert form.is_hidden()


def test_the_key_in_the_fragment_opens_the_page_and_leaves_the_address_bar(
    tab: tuple[Page, Watch], serve_server: ServeServer
) -> None:
    page, watch = tab
    open_dashboard(page, serve_server)
    assert serve_server.key not in page.url
    assert page.url == serve_server.url + "/"
    assert page.get_by_test_id("key-form").is_hidden()
    # Kept for this tab: a reload opens the page again without it in the URL.
    page.reload()
    page.wait_for_selector("[data-testid=lookups][data-value]")
    assert page.get_by_test_id("key-form").is_hidden()
    # A wrong key in the fragment: refused, and out of the address bar too.
    watch.allowed.add("401")
    page.goto(f"{serve_server.url}/#key=wrong-key-0123456789abcdef")
    page.get_by_test_id("key-form").wait_for(state="visible")
    assert "wrong-key" not in page.url
    assert page.get_by_test_id("hit-rate").is_hidden()


def test_a_server_gone_away_shows_unreachable_without_an_error(
    tab: tuple[Page, Watch], serve_server: ServeServer
) -> None:
    page, watch = tab
    open_dashboard(page, serve_server)
    assert page.get_by_test_id("status").get_attribute("data-state") == "ok"
    serve_server.stop()
    watch.allowed.add("ERR_CONNECTION_REFUSED")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=status]').dataset.state === 'unreachable'",
        timeout=LIVE_WAIT_MS,
    )
    assert "server unreachable" in (page.get_by_test_id("status").text_content() or "")
    assert page.get_by_test_id("hit-rate").is_visible()  # the last figures stay, marked stale
    assert page.locator("body.stale").count() == 1


def test_the_watch_sees_console_errors_page_errors_and_dialogs(browser: Browser) -> None:
    # The teardown checks above are only as good as the listeners: prove they hear.
    page = browser.new_page()
    watch = Watch.attach(page)
    try:
        page.set_content("<p>watch</p>")
        page.evaluate("console.error('logged')")
        page.evaluate("setTimeout(() => { throw new Error('thrown') }, 0)")
        page.evaluate("alert('popped')")
        page.wait_for_timeout(100)
    finally:
        page.close()
    assert watch.console_errors == ["logged"]
    assert any("thrown" in error for error in watch.page_errors)
    assert watch.dialogs == ["alert: popped"]
