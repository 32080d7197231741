"""`thrift top`: the Textual app driven by Textual's pilot, on real cache files.

Live tests make the cache change from another process (a real `thrift ask`) while the app
runs and wait, bounded, for it to show. Snapshot tests (pytest-textual-snapshot, SVGs in
tests/__snapshots__/) run on a file built with fixed rows and a fixed clock in UTC, so
they render the same everywhere; `pytest --snapshot-update` rewrites them after a
deliberate change (look at the SVGs before committing them).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import thrift_executable
from rich.text import Text
from textual.widgets import DataTable, Static, TabbedContent

from thrift_cli import db, stats
from thrift_cli.tui.app import TopApp, Window
from thrift_cli.tui.screens import ConfirmScreen, EntryScreen, FilterScreen, HelpScreen
from thrift_cli.tui.source import Source
from thrift_cli.tui.widgets import Panel

NOW = 1_796_300_000.0  # 2026-12-03 12:13:20 UTC: the snapshots' clock
INTERVAL = 0.2  # the live tests' refresh interval


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def run_app(app: TopApp, body: Callable[[Any], Awaitable[None]], size: tuple[int, int] = (120, 40)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: app.reads > 0)
            await body(pilot)

    asyncio.run(main())


async def until(pilot: Any, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the app did not get there in time")
        await pilot.pause(0.05)


def text(app: TopApp, selector: str) -> str:
    return _plain(app.screen.query_one(selector, Static))


def screen_text(app: TopApp) -> str:
    """Every Static's text on the screen on top (a dialog's)."""
    return "\n".join(_plain(widget) for widget in app.screen.query(Static))


def _plain(widget: Static) -> str:
    content = widget.render() if isinstance(widget, Panel) else widget.content
    return content.plain if isinstance(content, Text) else str(content)


def figure(app: TopApp, widget_id: str) -> str:
    return text(app, f"#{widget_id}").split("\n")[-1]


def cells(app: TopApp, table_id: str) -> list[list[str]]:
    table = app.query_one(f"#{table_id}", DataTable)
    return [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)] for i in range(table.row_count)]


def ask(*args: str) -> subprocess.CompletedProcess[str]:
    """A real `thrift ask` in another process (THRIFT_HOME from the test's environment)."""
    return subprocess.run(
        [*thrift_executable(), "ask", *args], capture_output=True, text=True, timeout=120, env=os.environ
    )


# -- a cache file with fixed rows, for the snapshots and the figure checks ---------------


def build(path: Path) -> None:
    """Three namespaces, hits of each tier, misses of each outcome, a veto, over two days
    before NOW, and questions that would break markup if shown as markup."""
    conn = db.connect(path)
    blob = bytes(384 * 4)
    entries = [
        ("e1", "llm -m gpt-4o-mini {}", "How do I undo the last git commit?", "git reset --soft HEAD~1"),
        (
            "e2",
            "llm -m gpt-4o-mini {}",
            "What is a [bold]semantic[/bold] cache?",
            "A cache keyed by meaning.",
        ),
        ("e3", "llm -m claude-3-haiku {}", "Is Python faster than Java?", "It depends on the workload."),
        ("e4", "docs", "How do I rotate the API keys?", "Run keys rotate, then redeploy."),
    ]
    for i, (id_, ns, q, a) in enumerate(entries):
        conn.execute(
            "INSERT INTO entries (id, namespace, question, question_hash, answer, embedding, created_at, "
            "hit_count) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
            (id_, ns, q, f"v1:{i:040x}", a, blob, NOW - 2 * 86400 + i),
        )
    events: list[tuple[Any, ...]] = []

    def event(ago: float, ns: str, tier: str, latency: float, **kw: Any) -> None:
        events.append(
            (
                NOW - ago,
                ns,
                tier,
                kw.get("similarity"),
                latency,
                kw.get("answer_bytes", 24),
                kw.get("call_ms"),
                kw.get("outcome"),
                kw.get("entry_id"),
                kw.get("source"),
                kw.get("question_bytes", 30),
                kw.get("question"),
            )
        )

    for i, (id_, ns, _q, _a) in enumerate(entries):
        event(2 * 86400 - i, ns, "miss", 80.0 + i, outcome="stored", call_ms=1200.0 + 100 * i, entry_id=id_)
    for k in range(24):  # a day and a half of hits, every hour or so
        id_, ns = entries[k % 4][0], entries[k % 4][1]
        ago = 36 * 3600 - k * 5400
        if k % 3 == 0:
            event(
                ago,
                ns,
                "semantic",
                70.0 + k,
                similarity=0.91,
                entry_id=id_,
                source="local",
                question=f"paraphrase {k}?",
            )
        else:
            event(ago, ns, "exact", 0.2 + k / 100, similarity=1.0, entry_id=id_, source="local")
    event(1800, entries[0][1], "exact", 0.9, similarity=1.0, entry_id="e1", source="redis")
    event(
        1200,
        entries[0][1],
        "miss",
        90.0,
        similarity=0.62,
        outcome="command failed (exit 1)",
        call_ms=400.0,
        question="Why does my build fail on CI?",
    )
    event(
        1000,
        entries[2][1],
        "miss",
        85.0,
        similarity=0.99,
        outcome="lookup-only",
        question="Is Java faster than Python?",
    )
    event(
        600,
        entries[0][1],
        "miss",
        88.0,
        outcome="timed out",
        call_ms=30000.0,
        question="Summarise this 400-page PDF",
    )
    event(
        60,
        entries[1][1],
        "semantic",
        75.0,
        similarity=0.93,
        entry_id="e2",
        source="local",
        question="Explain semantic caching",
    )
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO events (at, namespace, tier, similarity, latency_ms, answer_bytes, call_ms, outcome, "
        "entry_id, source, question_bytes, question) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        events,
    )
    veto_event = conn.execute("SELECT id FROM events WHERE outcome = 'lookup-only'").fetchone()[0]
    conn.execute(
        "INSERT INTO vetoes (event_id, at, namespace, question, candidate, similarity, guard) "
        "VALUES (?, ?, ?, 'Is Java faster than Python?', 'Is Python faster than Java?', 0.99, 'word-order')",
        (veto_event, NOW - 1000, entries[2][1]),
    )
    conn.execute("COMMIT")
    conn.close()


@pytest.fixture
def fixed(isolated_env: Path) -> Path:
    path = isolated_env / "cache.db"
    isolated_env.mkdir(parents=True, exist_ok=True)
    build(path)
    return path


def fixed_app(path: Path, window: str = "all", **kw: Any) -> TopApp:
    return TopApp(path, window=Window(window), interval=60, clock=lambda: NOW, **kw)


# -- the figures are thrift stats' -------------------------------------------------------


def test_the_headline_shows_the_figures_of_thrift_stats(fixed: Path, utc: None, thrift) -> None:
    ran = thrift("stats", "--json")
    assert ran.code == 0, ran.stderr
    expected = json.loads(ran.stdout)
    app = fixed_app(fixed)

    async def body(pilot: Any) -> None:
        assert figure(app, "lookups") == f"{expected['lookups']:,}" == "33"
        assert figure(app, "hit-rate") == f"{expected['hit_rate']:.1%}"
        assert figure(app, "entries") == "4"
        assert figure(app, "tokens") == f"~{expected['tokens_saved']:,}"
        assert figure(app, "money") == f"${expected['money_saved']['usd']:,.4f}"
        tiers = text(app, "#tiers")
        assert "exact    " in tiers and tiers.split("\n")[0].endswith(str(expected["hits_by_tier"]["exact"]))
        assert tiers.split("\n")[2].endswith("1")  # the one hit served from redis
        feed = cells(app, "feed")
        assert len(feed) == expected["lookups"]
        newest = feed[0]
        assert newest[1] == "semantic" and newest[4] == "Explain semantic caching"
        assert newest[5].startswith("What is a [bold]semantic[/bold]")  # text, not markup
        assert any(row[4] == "Why does my build fail on CI?" and "command failed" in row[5] for row in feed)
        assert cells(app, "vetoes")[0][1:3] == ["word-order", "0.990"]
        assert [row[0] for row in cells(app, "top")] == [str(q["hits"]) for q in expected["top_questions"]]

    run_app(app, body)


def test_timeline_recent_and_entry_detail_read_the_rows(fixed: Path) -> None:
    conn = db.connect(fixed)
    line = stats.timeline(conn, stats.Window(since=NOW - 86400), now=NOW, points=30)
    assert line["step_seconds"] == 3600 and len(line["lookups"]) == 25
    assert line["start"] % 3600 == 0 and line["start"] <= NOW - 86400 + 3600
    in_window = conn.execute("SELECT count(*), sum(tier <> 'miss') FROM events WHERE at >= ?", (NOW - 86400,))
    lookups, hits = in_window.fetchone()
    assert (sum(line["lookups"]), sum(line["hits"])) == (lookups, hits)
    everything = stats.timeline(conn, stats.Window(), now=NOW, points=60)
    assert everything["step_seconds"] == 3600 and sum(everything["lookups"]) == 33

    # A refresh that starts from the last timeline reads only its latest buckets, and
    # agrees with one read from scratch, events recorded meanwhile included.
    before = stats.timeline(conn, stats.Window(), now=NOW, points=60)
    conn.execute(
        "INSERT INTO events (at, namespace, tier, latency_ms) VALUES (?, 'docs', 'exact', 0.5), "
        "(?, 'docs', 'miss', 80), (?, 'docs', 'exact', 0.4)",
        (NOW - 3700, NOW - 5, NOW + 7200),
    )
    later = NOW + 7300
    again = stats.timeline(conn, stats.Window(), now=later, points=60, known=before)
    assert again == stats.timeline(conn, stats.Window(), now=later, points=60)
    assert sum(again["lookups"]) == 36 and sum(again["hits"]) == sum(before["hits"]) + 2
    conn.execute("DELETE FROM events WHERE at > ? OR (at = ? AND tier = 'exact')", (NOW - 6, NOW - 3700))

    feed = stats.recent(conn, stats.Window(namespace="llm -m gpt-4o-mini {}"), limit=5)
    assert [f["id"] for f in feed] == sorted((f["id"] for f in feed), reverse=True)
    assert {f["namespace"] for f in feed} == {"llm -m gpt-4o-mini {}"}
    stored = stats.recent(conn, stats.Window(), limit=100)[-1]
    assert stored["outcome"] == "stored" and stored["question"] == "How do I undo the last git commit?"
    every = stats.recent(conn, stats.Window(), limit=100)
    assert len(every) == 33
    middle = every[10]["id"]
    assert stats.recent(conn, stats.Window(), after_id=middle) == every[:10]

    detail = stats.entry_detail(conn, "e3")
    assert detail is not None and detail["answer"] == "It depends on the workload."
    assert [v["question"] for v in detail["vetoes"]] == ["Is Java faster than Python?"]
    assert stats.entry_detail(conn, "no-such-id") is None
    assert stats.histogram([0.5, 1.0, 1.5, 999.0, 1000.0, 5000.0]) == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 2]
    conn.close()


# -- live: another process's lookups show up ---------------------------------------------


def test_a_lookup_by_another_process_shows_within_the_refresh_interval(isolated_env: Path, fake_llm) -> None:
    assert ask("What is semantic caching?", "--", *fake_llm.command()).returncode == 0
    app = TopApp(isolated_env / "cache.db", window=Window("1h"), interval=INTERVAL)

    async def body(pilot: Any) -> None:
        assert figure(app, "lookups") == "1"
        reads = app.reads
        done = ask("What is semantic caching?", "--", *fake_llm.command())  # an exact hit, elsewhere
        assert done.returncode == 0
        seen = time.monotonic()
        await until(pilot, lambda: figure(app, "lookups") == "2", timeout=10)
        waited = time.monotonic() - seen
        assert app.reads > reads
        assert waited < 5, waited  # a refresh interval of 0.2 s; generous for a loaded machine
        assert figure(app, "hit-rate") == "50.0%"
        assert cells(app, "feed")[0][1] == "exact"
        assert cells(app, "feed")[0][4] == "What is semantic caching?"

    run_app(app, body)
    assert len(fake_llm.calls) == 1


def test_a_read_in_progress_never_makes_a_writer_wait(isolated_env: Path, fake_llm) -> None:
    """The app's reads are WAL snapshots: a `thrift ask` commits its entry and its event
    while one is open, and the next read sees them."""
    assert ask("What is semantic caching?", "--", *fake_llm.command()).returncode == 0
    source = Source(isolated_env / "cache.db")
    assert source.changed()
    conn = source._open()
    conn.execute("BEGIN")
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1  # the snapshot is taken
    started = time.monotonic()
    done = ask("How do I undo the last git commit?", "--", *fake_llm.command())
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30  # not stuck behind the reader (busy_timeout is longer)
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1  # still its snapshot
    conn.execute("ROLLBACK")
    assert source.changed()
    assert source.snapshot(None, None).figures["lookups"] == 2
    source.close()


def test_p_pauses_the_refresh_and_resumes_it(isolated_env: Path, fake_llm) -> None:
    assert ask("What is semantic caching?", "--", *fake_llm.command()).returncode == 0
    app = TopApp(isolated_env / "cache.db", interval=INTERVAL)

    async def body(pilot: Any) -> None:
        await pilot.press("p")
        assert "PAUSED" in text(app, "#status")
        assert ask("What is semantic caching?", "--", *fake_llm.command()).returncode == 0
        await pilot.pause(1.0)  # five refresh intervals
        assert figure(app, "lookups") == "1"
        await pilot.press("p")
        assert "PAUSED" not in text(app, "#status")
        await until(pilot, lambda: figure(app, "lookups") == "2", timeout=10)

    run_app(app, body)


def test_an_empty_cache_says_how_to_begin_and_fills_in_when_asked(isolated_env: Path, fake_llm) -> None:
    app = TopApp(isolated_env / "cache.db", interval=INTERVAL)

    async def body(pilot: Any) -> None:
        hint = text(app, "#empty")
        assert "Nothing cached yet" in hint and 'thrift ask "' in hint and "thrift import" in hint
        assert app.screen.has_class("empty")
        assert not (isolated_env / "cache.db").exists()  # it only reads: nothing created
        assert ask("What is semantic caching?", "--", *fake_llm.command()).returncode == 0
        await until(pilot, lambda: not app.screen.has_class("empty"), timeout=10)
        assert figure(app, "entries") == "1"

    run_app(app, body)


# -- the keys ---------------------------------------------------------------------------


def test_slash_filters_by_namespace_and_the_figures_follow(fixed: Path) -> None:
    app = fixed_app(fixed)

    async def body(pilot: Any) -> None:
        assert figure(app, "lookups") == "33"
        await pilot.press("slash")
        assert isinstance(app.screen, FilterScreen)
        reads = app.reads
        await pilot.press(*"docs", "enter")
        await until(pilot, lambda: app.reads > reads)
        assert app.view.namespace == "docs"
        assert "namespace docs" in text(app, "#status")
        assert figure(app, "lookups") == "7" and figure(app, "entries") == "1"
        assert {row[4] for row in cells(app, "feed")} <= {
            "How do I rotate the API keys?",
            "paraphrase 3?",
            "paraphrase 15?",
        }
        await pilot.press("slash", "escape")  # escape changes nothing
        assert app.view.namespace == "docs"
        reads = app.reads
        await pilot.press("slash", *["backspace"] * 4, "enter")  # empty: every namespace again
        await until(pilot, lambda: app.reads > reads)
        assert app.view.namespace is None and figure(app, "lookups") == "33"

    run_app(app, body)


def test_t_cycles_the_time_window(fixed: Path) -> None:
    app = fixed_app(fixed, window="15m")

    async def body(pilot: Any) -> None:
        assert "last 15m" in text(app, "#status")
        assert figure(app, "lookups") == "2"  # the timed-out miss (10 min ago) and the hit 1 min ago
        seen = []
        for _ in range(5):
            reads = app.reads
            await pilot.press("t")
            await until(pilot, lambda reads=reads: app.reads > reads)
            seen.append((app.view.name, figure(app, "lookups")))
        assert seen == [("1h", "5"), ("24h", "21"), ("7d", "33"), ("30d", "33"), ("all", "33")]
        await pilot.press("t")
        assert app.view.name == "15m"

    run_app(app, body)


def test_enter_shows_the_selected_entry_with_its_vetoes(fixed: Path) -> None:
    app = fixed_app(fixed)

    async def body(pilot: Any) -> None:
        feed = cells(app, "feed")
        row = next(i for i, r in enumerate(feed) if r[4] == "Is Python faster than Java?")
        app.query_one("#feed", DataTable).move_cursor(row=row)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EntryScreen))
        shown = screen_text(app)
        assert "It depends on the workload." in shown
        assert "word-order" in shown and "Is Java faster than Python?" in shown
        await pilot.press("escape")
        assert not isinstance(app.screen, EntryScreen)
        # A lookup that stored nothing says so.
        row = next(i for i, r in enumerate(cells(app, "feed")) if r[4] == "Why does my build fail on CI?")
        app.query_one("#feed", DataTable).move_cursor(row=row)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EntryScreen))
        assert "stored no entry: command failed (exit 1)" in screen_text(app)

    run_app(app, body)


def test_f_forgets_the_selected_entry_only_after_yes(isolated_env: Path, fake_llm) -> None:
    for question in ("What is semantic caching?", "How do I undo the last git commit?"):
        assert ask(question, "--", *fake_llm.command()).returncode == 0
    path = isolated_env / "cache.db"
    app = TopApp(path, interval=INTERVAL)

    def questions() -> set[str]:
        # Through thrift's own SQLite library: a second library in the process (the
        # stdlib's sqlite3) would, on close, think itself the file's last connection and
        # remove the -shm the app's connection still maps.
        conn = db.connect(path)
        try:
            return {r[0] for r in conn.execute("SELECT question FROM entries")}
        finally:
            conn.close()

    async def body(pilot: Any) -> None:
        assert cells(app, "feed")[0][4] == "How do I undo the last git commit?"
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen)
        assert questions() == {"What is semantic caching?", "How do I undo the last git commit?"}
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: figure(app, "entries") == "1", timeout=10)
        assert questions() == {"What is semantic caching?"}
        await pilot.press("f")  # the same row: its entry is gone now
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)

    run_app(app, body)
    # The next ask of the forgotten question runs the command again.
    assert ask("How do I undo the last git commit?", "--", *fake_llm.command()).returncode == 0
    assert len(fake_llm.calls) == 3


def test_question_mark_shows_the_help_and_q_quits(fixed: Path) -> None:
    app = fixed_app(fixed)

    async def body(pilot: Any) -> None:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "forget the selected entry" in screen_text(app)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        tabs = app.query_one("#tabs", TabbedContent)
        for key, tab in (("2", "top-tab"), ("3", "vetoes-tab"), ("1", "feed-tab")):
            await pilot.press(key)
            assert tabs.active == tab
        await pilot.press("2", "enter")  # enter on a top question opens its entry
        await until(pilot, lambda: isinstance(app.screen, EntryScreen))
        first = cells(app, "top")[0][3]
        assert first == "What is a [bold]semantic[/bold] cache?"  # 7 hits, the latest 1 min ago
        assert first in screen_text(app) and "A cache keyed by meaning." in screen_text(app)
        await pilot.press("escape")
        await pilot.press("q")
        await pilot.pause(0.2)
        assert not app.is_running

    run_app(app, body)


# -- the command line -------------------------------------------------------------------


def test_thrift_top_refuses_bad_options_and_a_missing_terminal(thrift) -> None:
    for args, message in (
        (["--interval", "0"], "--interval must be a number of seconds, at least 0.2"),
        (["--interval", "soon"], "--interval must be a number of seconds"),
        (["--since", "yesterday-ish"], "--since must be a duration such as 1h or 7d"),
        (["--namespace", ""], "--namespace"),
        ([], "thrift top needs a terminal"),
    ):
        ran = thrift("top", *args)
        assert ran.code == 2, (args, ran.stderr)
        assert len(ran.stderr.strip().splitlines()) == 1 and message in ran.stderr, ran.stderr


def test_thrift_top_runs_in_a_terminal_and_quits_on_q(isolated_env: Path, fake_llm) -> None:
    """The real command in a pseudo-terminal: it draws the figures, then q ends it with 0."""
    import pty
    import select

    assert ask("What is semantic caching?", "--", *fake_llm.command()).returncode == 0
    pid, fd = pty.fork()
    if pid == 0:  # the child: thrift top on the pty
        os.environ.update({"COLUMNS": "100", "LINES": "30", "TERM": "xterm-256color"})
        os.execv(thrift_executable()[0], [*thrift_executable(), "top", "--since", "all"])
    screen = b""
    deadline = time.monotonic() + 30
    try:
        while b"What is semantic caching?" not in screen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                screen += os.read(fd, 65536)
        assert b"What is semantic caching?" in screen
        os.write(fd, b"q")
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            select.select([fd], [], [], 0.2)
            try:
                os.read(fd, 65536)
            except OSError:
                pass
        else:
            raise AssertionError("thrift top did not quit on q")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.close(fd)


# -- snapshots: a fixed file, a fixed clock ---------------------------------------------


def test_snapshot_80x24(fixed: Path, utc: None, snap_compare) -> None:
    assert snap_compare(fixed_app(fixed), terminal_size=(80, 24), run_before=_loaded)


def test_snapshot_120x40(fixed: Path, utc: None, snap_compare) -> None:
    assert snap_compare(fixed_app(fixed), terminal_size=(120, 40), run_before=_loaded)


def test_snapshot_200x60_light(fixed: Path, utc: None, snap_compare) -> None:
    assert snap_compare(fixed_app(fixed, light=True), terminal_size=(200, 60), run_before=_loaded)


def test_snapshot_80x24_no_color(fixed: Path, utc: None, snap_compare, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")  # Textual reads it when the app is made
    app = fixed_app(fixed)
    assert app.no_color
    assert snap_compare(app, terminal_size=(80, 24), run_before=_loaded)


def test_snapshot_80x24_empty(isolated_env: Path, utc: None, snap_compare) -> None:
    # The hint names the file: one whose name does not change from run to run.
    app = TopApp(Path("/nonexistent/thrift-home/cache.db"), interval=60, clock=lambda: NOW)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_loaded)


async def _loaded(pilot: Any) -> None:
    await until(pilot, lambda: pilot.app.reads > 0)
    await pilot.pause()
