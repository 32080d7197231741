"""The `thrift top` app: headline figures, charts, and the live tables, refreshed while
other processes use the cache.

Refreshing: a timer ticks every `interval` seconds on the app's thread and, unless paused
or a read is still running, starts one worker thread that asks the Source whether
anything changed (PRAGMA data_version: microseconds) and reads the figures only then.
A read of a big window takes a while (1M events all time: ~1.9 s); so that a busy cache
does not keep a core busy re-reading them, after a read of R seconds the next full read
waits at least BACK_OFF x R, and meanwhile only the feed (new events by rowid) is read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from thrift_cli import config
from thrift_cli.stats_cmd import clip
from thrift_cli.tui.screens import MODAL_CSS, ConfirmScreen, EntryScreen, FilterScreen, HelpScreen
from thrift_cli.tui.source import FEED_ROWS, SLIDE_SECONDS, Snapshot, Source
from thrift_cli.tui.widgets import Figure, Latency, Tiers, Timeline, headline, latency_text

# The time windows `t` cycles through: (name, seconds back from now; None: all time).
WINDOWS: list[tuple[str, float | None]] = [
    ("15m", 15 * 60),
    ("1h", 3600),
    ("24h", 86400),
    ("7d", 7 * 86400),
    ("30d", 30 * 86400),
    ("all", None),
]
DEFAULT_WINDOW = "24h"
# After a full read of R seconds the next waits at least BACK_OFF x R (the feed does not):
# on a busy cache, the figures cost at most ~1/BACK_OFF of a core.
BACK_OFF = 10

EMPTY_HINT = """\
Nothing cached yet: no lookup has been recorded in {path}.

thrift top shows lookups live as they happen. Ask a first question in another terminal:

    thrift ask "How do I undo the last git commit?" -- llm -m gpt-4o-mini

Ask it again, or a paraphrase of it, and watch the hit appear here. Or fill the cache \
with what llm has already answered:

    thrift import "$(llm logs path)"

Press ? for the keys, q to quit."""


@dataclass
class Window:
    """What the screen shows: a time window (by name) and a namespace (None: all)."""

    name: str = DEFAULT_WINDOW
    namespace: str | None = None
    custom_since: float | None = None  # `--since DATE`: a fixed start, shown as "since ..."

    def since(self, now: float) -> float | None:
        if self.custom_since is not None:
            return self.custom_since
        named = dict(WINDOWS)
        seconds = named[self.name] if self.name in named else config.duration(self.name, "--since")
        return None if seconds is None else now - seconds

    def slide(self) -> float:
        """How often a window that slides is read again when nothing changed: every 30 s,
        or every 1/200th of the window if longer (its figures move by 0.5% or less)."""
        if self.custom_since is not None:
            return float("inf")  # a fixed start: nothing slides
        since = self.since(0.0)
        return SLIDE_SECONDS if since is None else max(SLIDE_SECONDS, -since / 200)

    @property
    def label(self) -> str:
        if self.custom_since is not None:
            return "since " + datetime.fromtimestamp(self.custom_since).strftime("%Y-%m-%d %H:%M")
        return "all time" if self.name == "all" else f"last {self.name}"


class TopApp(App[None]):
    """The dashboard of the cache at `path`."""

    TITLE = "thrift top"
    ENABLE_COMMAND_PALETTE = False
    CSS = (
        """
    #top-line {
        height: 1;
        background: $panel;
        padding: 0 1;
    }
    #status {
        width: 1fr;
    }
    #clock {
        width: auto;
    }
    #headline {
        height: 2;
        margin: 0 0 0 1;
    }
    #charts {
        height: 8;
    }
    .tall #charts {
        height: 14;
    }
    #timeline {
        width: 1fr;
        min-width: 20;
    }
    #tiers {
        width: 26;
    }
    #latency {
        width: 28;
    }
    .wide #tiers {
        width: 36;
    }
    .wide #latency {
        width: 40;
    }
    TabbedContent {
        height: 1fr;
    }
    DataTable {
        height: 1fr;
    }
    #empty {
        height: 1fr;
        padding: 1 2;
        display: none;
    }
    .empty #empty {
        display: block;
    }
    .empty #charts, .empty TabbedContent {
        display: none;
    }
    """
        + MODAL_CSS
    )
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("p", "pause", "pause"),
        Binding("slash", "filter", "filter"),
        Binding("t", "window", "window"),
        Binding("f", "forget", "forget"),
        Binding("enter", "open", "entry", show=False),
        Binding("question_mark", "help", "help"),
        Binding("1", "tab('feed')", "feed", show=False),
        Binding("2", "tab('top')", "top", show=False),
        Binding("3", "tab('vetoes')", "vetoes", show=False),
    ]

    def __init__(
        self,
        path: Path,
        *,
        window: Window | None = None,
        interval: float = 1.0,
        prices: dict[str, float] | None = None,
        default_price: float = 0.002,
        clock: Callable[[], float] = time.time,
        light: bool = False,
        forget: Callable[[str], Any] | None = None,
    ) -> None:
        super().__init__()
        self.path = path
        self.source = Source(path, prices=prices, default_price=default_price, clock=clock)
        self.view = window or Window()
        self.interval = interval
        self.clock = clock
        self.light = light
        self.paused = False
        self.snapshot: Snapshot | None = None
        self.reads = 0  # full reads of the figures so far (the tests wait on it)
        self._forget = forget
        self._busy = False
        self._force = True
        self._pending = False  # a change seen and not yet read in full (a slow read's back-off)
        self._last_full = 0.0
        self._last_read_s = 0.0
        self._rows: dict[str, dict[str, Any]] = {}  # feed row key -> its lookup

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="top-line"):
            yield Static(id="status")
            yield Static(id="clock")
        with Horizontal(id="headline"):
            yield Figure("hit rate", id="hit-rate")
            yield Figure("lookups", id="lookups")
            yield Figure("time saved", id="time-saved")
            yield Figure("tokens", id="tokens")
            yield Figure("$ saved", id="money")
            yield Figure("entries", id="entries")
        with Horizontal(id="charts"):
            yield Timeline(id="timeline")
            yield Tiers(id="tiers")
            yield Latency(id="latency")
        yield Static(id="empty")
        with TabbedContent(id="tabs"):
            with TabPane("live feed", id="feed-tab"):
                yield DataTable(id="feed", cursor_type="row", zebra_stripes=True)
            with TabPane("top questions", id="top-tab"):
                yield DataTable(id="top", cursor_type="row", zebra_stripes=True)
            with TabPane("vetoes", id="vetoes-tab"):
                yield DataTable(id="vetoes", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        if self.light:
            self.theme = "textual-light"
        self._dash.query_one("#tiers", Tiers).border_title = "hits by tier"
        self._dash.query_one("#latency", Latency).border_title = "lookup latency, ms"
        self._dash.query_one("#feed", DataTable).add_columns(
            "time", "tier", "sim", "ms", "question", "matched / outcome"
        )
        self._dash.query_one("#top", DataTable).add_columns("hits", "last hit", "namespace", "question")
        self._dash.query_one("#vetoes", DataTable).add_columns(
            "time", "guard", "sim", "question asked", "refused"
        )
        self._dash.query_one("#feed", DataTable).focus()
        self._fit()
        self._status()
        self.call_after_refresh(self.tick)  # once laid out: the timeline's width sets its buckets
        self.set_interval(self.interval, self.tick)

    def on_resize(self) -> None:
        self._fit()
        self._force = True  # the timeline's buckets follow its width

    def _fit(self) -> None:
        """More room for the charts on a tall terminal, for the side panels on a wide one."""
        self._dash.set_class(self.size.height >= 40, "tall")
        self._dash.set_class(self.size.width >= 160, "wide")

    def on_unmount(self) -> None:
        self.source.close()

    @property
    def _dash(self) -> Screen[Any]:
        """The dashboard's screen: App.query_one would search a dialog shown over it."""
        return self.screen_stack[0]

    # -- refreshing ----------------------------------------------------------------------

    def tick(self) -> None:
        if self.paused or self._busy or not self.screen_stack:
            return
        now = self.clock()
        full_due = now - self._last_full >= max(self.interval, BACK_OFF * self._last_read_s)
        slid = self.view.since(now) is not None and now - self._last_full >= self.view.slide()
        try:
            points = max(self._dash.query_one("#timeline", Timeline).content_size.width, 10)
        except NoMatches:  # the app is closing: its widgets are gone
            return
        force, self._force = self._force or slid, False
        self._busy = True
        self._read(force=force, full_due=full_due, points=points)

    @work(thread=True, exit_on_error=True, group="read")
    def _read(self, *, force: bool, full_due: bool, points: int) -> None:
        try:
            changed = self.source.changed()
            now = self.clock()
            since, namespace = self.view.since(now), self.view.namespace
            if self.snapshot is None and self._last_full == 0.0:  # the first read: the cheap part first
                self.call_from_thread(self._show, self.source.quick(since, namespace))
            self._pending = self._pending or changed
            if force or (self._pending and full_due):
                self._pending = False
                started = time.perf_counter()
                snapshot = self.source.snapshot(since, namespace, points=points)
                self._last_read_s = time.perf_counter() - started
                self._last_full = now
                self.call_from_thread(self._show, snapshot)
            elif changed:  # a full read is not due yet: the new lookups only, the rest when due
                shown = self.snapshot
                if shown is not None:
                    fresh = self.source.feed(since, namespace, shown.feed[0]["id"] if shown.feed else 0)
                    if fresh:
                        self.call_from_thread(self._show_feed, fresh + shown.feed)
        finally:
            self._busy = False

    def refresh_now(self) -> None:
        """Read everything again at the next tick (after a filter, a window, a forget)."""
        self._force = True
        self.tick()

    def _show(self, snapshot: Snapshot) -> None:
        if snapshot.partial and self.snapshot is not None:
            return  # the full read came first
        self.snapshot = snapshot
        self.reads += not snapshot.partial
        self._dash.set_class(snapshot.empty and not snapshot.partial, "empty")
        if snapshot.empty:
            self._dash.query_one("#empty", Static).update(Text(EMPTY_HINT.format(path=self.path)))
        for widget_id, (value, note) in headline(snapshot.figures).items():
            reading = snapshot.partial and widget_id != "entries"
            self._dash.query_one(f"#{widget_id}", Figure).show("…" if reading else value, note)
        self._show_feed(snapshot.feed)
        self._status()
        if snapshot.partial:
            return
        self._dash.query_one("#timeline", Timeline).show(snapshot.timeline)
        self._dash.query_one("#tiers", Tiers).show(snapshot.figures)
        self._dash.query_one("#latency", Latency).show(snapshot.figures)
        self._show_top(snapshot.figures["top_questions"])
        self._show_vetoes(snapshot.figures["vetoes"]["recent"])
        self._status()

    def _time(self, at: float) -> str:
        """A lookup's time: of day when it was today, else with its date."""
        when, today = datetime.fromtimestamp(at), datetime.fromtimestamp(self.clock()).date()
        return when.strftime("%H:%M:%S") if when.date() == today else when.strftime("%m-%d %H:%M")

    def _widths(self) -> tuple[int, int]:
        """The room for the feed's question and matched columns at this width."""
        room = max(self.size.width - 45, 24)
        return room * 11 // 20, room * 9 // 20

    def _show_feed(self, feed: list[dict[str, Any]]) -> None:
        feed = feed[:FEED_ROWS]
        if self.snapshot is not None:
            self.snapshot = replace(self.snapshot, feed=feed)
        asked_w, matched_w = self._widths()
        rows = []
        self._rows = {}
        for look in feed:
            key = f"event-{look['id']}"
            self._rows[key] = look
            rows.append(
                (
                    key,
                    [
                        Text(self._time(look["at"])),
                        _tier(look),
                        Text(
                            "" if look["similarity"] is None else f"{look['similarity']:.3f}", justify="right"
                        ),
                        Text(latency_text(look["latency_ms"]), justify="right"),
                        Text(clip(look["question"] or "", asked_w)),
                        Text(clip(_matched(look), matched_w), style="dim" if look["tier"] == "miss" else ""),
                    ],
                )
            )
        _fill(self._dash.query_one("#feed", DataTable), rows)

    def _show_top(self, top: list[dict[str, Any]]) -> None:
        width = max(self.size.width - 40, 20)
        rows = [
            (
                f"entry-{q['entry_id']}",
                [
                    Text(f"{q['hits']:,}", justify="right"),
                    Text(datetime.fromtimestamp(q["last_hit_at"]).strftime("%m-%d %H:%M")),
                    Text(clip(q["namespace"], 16)),
                    Text(clip(q["question"] if q["question"] is not None else "(forgotten)", width)),
                ],
            )
            for q in top
        ]
        _fill(self._dash.query_one("#top", DataTable), rows)

    def _show_vetoes(self, vetoes: list[dict[str, Any]]) -> None:
        asked_w, refused_w = self._widths()
        rows = [
            (
                f"veto-{i}",
                [
                    Text(self._time(v["at"])),
                    Text(v["guard"]),
                    Text(f"{v['similarity']:.3f}", justify="right"),
                    Text(clip(v["question"], asked_w)),
                    Text(clip(v["candidate"], refused_w)),
                ],
            )
            for i, v in enumerate(vetoes)
        ]
        _fill(self._dash.query_one("#vetoes", DataTable), rows)

    def _status(self) -> None:
        where = (
            "all namespaces" if self.view.namespace is None else f"namespace {clip(self.view.namespace, 30)}"
        )
        state = "PAUSED (p resumes)" if self.paused else f"live, every {self.interval:g} s"
        if self.snapshot is not None and self.snapshot.partial:
            state = "reading the figures…"
        self._dash.query_one("#status", Static).update(
            Text(f"thrift top · {self.view.label} · {where} · {state}")
        )
        self._dash.query_one("#clock", Static).update(
            Text(datetime.fromtimestamp(self.clock()).strftime("%H:%M:%S"))
        )

    # -- the keys -----------------------------------------------------------------------

    def action_pause(self) -> None:
        self.paused = not self.paused
        self._status()
        if not self.paused:
            self.refresh_now()

    def action_window(self) -> None:
        names = [name for name, _ in WINDOWS]
        current = (
            names.index(self.view.name) if self.view.name in names and self.view.custom_since is None else -1
        )
        self.view = Window(names[(current + 1) % len(names)], self.view.namespace)
        self._status()
        self.refresh_now()

    def action_filter(self) -> None:
        namespaces = self.snapshot.namespaces if self.snapshot is not None else []

        def chosen(value: str | None) -> None:
            if value is None:
                return
            self.view = Window(self.view.name, value or None, self.view.custom_since)
            self._status()
            self.refresh_now()

        self.push_screen(FilterScreen(self.view.namespace, namespaces), chosen)

    def action_tab(self, name: str) -> None:
        self._dash.query_one("#tabs", TabbedContent).active = f"{name}-tab"
        self._dash.query_one(f"#{name}", DataTable).focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(", ".join(name for name, _ in WINDOWS)))

    def _selected(self) -> tuple[str | None, dict[str, Any] | None]:
        """The entry id of the selected row of the table in view, and its lookup (feed)."""
        tab = self._dash.query_one("#tabs", TabbedContent).active
        table = self._dash.query_one({"feed-tab": "#feed", "top-tab": "#top"}.get(tab, "#vetoes"), DataTable)
        if table.row_count == 0 or tab == "vetoes-tab":
            return None, None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or ""
        if key.startswith("entry-"):
            return key.removeprefix("entry-"), None
        look = self._rows.get(key)
        return (look or {}).get("entry_id"), look

    def action_open(self) -> None:
        entry_id, look = self._selected()
        if entry_id is not None or look is not None:
            self._open_entry(entry_id, look)

    @work(thread=True, group="entry")
    def _open_entry(self, entry_id: str | None, look: dict[str, Any] | None) -> None:
        # In a worker: the Source's connection may be busy with a read for a moment.
        entry = None if entry_id is None else self.source.entry(entry_id)

        def closed(forget_id: str | None) -> None:
            if forget_id is not None and entry is not None:
                self._confirm_forget(entry)

        self.call_from_thread(self.push_screen, EntryScreen(entry, look), closed)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_forget(self) -> None:
        entry_id, look = self._selected()
        if entry_id is None:
            what = "no row selected" if look is None else "this lookup stored no entry to forget"
            self.notify(what, severity="warning")
            return
        self._ask_forget(entry_id)

    @work(thread=True, group="entry")
    def _ask_forget(self, entry_id: str) -> None:
        entry = self.source.entry(entry_id)
        if entry is None:
            self.call_from_thread(self.notify, "that entry is no longer in the cache", severity="warning")
        else:
            self.call_from_thread(self._confirm_forget, entry)

    def _confirm_forget(self, entry: dict[str, Any]) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._do_forget(entry["id"], entry["question"])

        detail = f"{entry['question']}\n(namespace {entry['namespace']}, {entry['hits']:,} hits)"
        self.push_screen(ConfirmScreen("Forget this entry from every tier?", detail), answered)

    @work(thread=True, group="forget")
    def _do_forget(self, entry_id: str, question: str) -> None:
        from thrift_cli.errors import ThriftError

        try:
            result = (self._forget or _forget_entry)(entry_id)
        except ThriftError as exc:
            self.call_from_thread(self.notify, f"not forgotten: {exc}", severity="error")
            return
        if result.error:
            self.call_from_thread(self.notify, result.error, severity="error")
        elif result.deleted:
            tiers = ", ".join(sorted({t for item in result.deleted for t in item.tiers}))
            self.call_from_thread(self.notify, f"forgotten from {tiers}: {clip(question, 60)}")
        else:
            self.call_from_thread(self.notify, "already gone: nothing forgotten", severity="warning")
        self.call_from_thread(self.refresh_now)


def _forget_entry(entry_id: str) -> Any:
    from thrift_cli.forget import forget_entry

    return forget_entry(entry_id)


def _fill(table: DataTable[Any], rows: list[tuple[str, list[Any]]]) -> None:
    """Replace the table's rows, keeping the cursor on the same row key where it still is."""
    selected = None
    if table.row_count:
        selected = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if selected is not None and selected in {key for key, _ in rows}:
        table.move_cursor(row=table.get_row_index(selected), animate=False)


def _tier(look: dict[str, Any]) -> Text:
    tier, source = look["tier"], look["source"]
    name = tier if source in (None, "local") else f"{tier[:3]}·{source}"
    style = {"exact": "green", "semantic": "cyan", "miss": "yellow"}.get(tier, "")
    return Text(name, style=style)


def _matched(look: dict[str, Any]) -> str:
    if look["tier"] == "semantic":
        return look["matched"] or "(forgotten entry)"
    if look["tier"] == "miss":
        outcome = look["outcome"] or "not stored"
        if look["call_ms"] is not None:
            outcome += f", call {look['call_ms'] / 1000:.1f} s"
        return outcome
    return ""
