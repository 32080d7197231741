"""The pieces of `thrift top`'s screen that draw figures: each takes a Snapshot's part
and renders it as text sized to the widget.

Charts are drawn with block characters, so they read the same without colour (NO_COLOR,
a monochrome or light terminal): colour only repeats what the shapes and words say.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.widgets import Static

from thrift_cli.stats_cmd import duration

EIGHTHS = " ▁▂▃▄▅▆▇█"


def compact(n: float) -> str:
    """A count in at most 6 characters: 987, 12,345, 123.4k, 12.3M."""
    if abs(n) < 100_000:
        return f"{n:,.0f}"
    if abs(n) < 100_000_000:
        return f"{n / 1000:,.1f}k" if abs(n) < 1_000_000 else f"{n / 1_000_000:,.2f}M"
    return f"{n / 1_000_000:,.0f}M"


def money(usd: float) -> str:
    if usd < 10:
        return f"${usd:,.4f}"
    if usd < 10_000:
        return f"${usd:,.2f}"
    return f"${usd:,.0f}"


def step_name(seconds: int) -> str:
    """A bucket width as words: minute, 15 min, hour, 6 h, day, week."""
    names = {60: "minute", 3600: "hour", 86400: "day", 7 * 86400: "week"}
    if seconds in names:
        return names[seconds]
    return f"{seconds // 60} min" if seconds < 3600 else f"{seconds // 3600} h"


def column(fraction: float, height: int) -> list[str]:
    """One bar of a vertical chart, top cell first: `fraction` (0..1) of `height` cells,
    in eighths; a bar above zero shows at least one eighth."""
    eighths = round(max(0.0, min(fraction, 1.0)) * height * 8)
    if fraction > 0 and eighths == 0:
        eighths = 1
    cells = []
    for level in range(height - 1, -1, -1):
        filled = eighths - level * 8
        cells.append(EIGHTHS[max(0, min(filled, 8))])
    return cells


def bars(fractions: list[float | None], height: int, width: int = 1, empty: str = "·") -> list[str]:
    """A vertical bar chart, its rows top first; a None value (nothing to show there) is
    `empty` on the bottom row."""
    rows = [""] * height
    for fraction in fractions:
        cells = [" "] * (height - 1) + [empty] if fraction is None else column(fraction, height)
        for i, cell in enumerate(cells):
            rows[i] += cell * width
    return rows


class Figure(Static):
    """One headline figure: its name above its value (and a note beside the name)."""

    DEFAULT_CSS = """
    Figure {
        width: 1fr;
        height: 2;
        padding: 0 1;
        margin: 0 1 0 0;
        background: $boost;
    }
    """

    def __init__(self, title: str, *, id: str) -> None:
        super().__init__(id=id)
        self.title = title
        self.show("-")

    def show(self, value: str, note: str | None = None) -> None:
        text = Text(self.title, style="dim")
        if note:
            text.append(f" ({note})", style="dim italic")
        text.append("\n" + value, style="bold")
        self.update(text)


class Panel(Static):
    """A chart in a box, redrawn at its own size from the last data it was given."""

    DEFAULT_CSS = """
    Panel {
        height: 100%;
        border: round $secondary;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    """

    data: Any = None

    def show(self, data: Any) -> None:
        self.data = data
        self.refresh()

    def render(self) -> Text:
        size = self.content_size
        if self.data is None or size.width < 4 or size.height < 2:
            return Text("")
        return self.draw(self.data, size.width, size.height)

    def draw(self, data: Any, width: int, height: int) -> Text:
        raise NotImplementedError


class Timeline(Panel):
    """Hit rate per bucket of time, oldest left, now right; a dot where nothing was looked up."""

    def show(self, data: Any) -> None:
        self.border_title = f"hit rate per {step_name(int(data['step_seconds']))}"
        super().show(data)

    def draw(self, data: Any, width: int, height: int) -> Text:
        lookups, hits = data["lookups"][-width:], data["hits"][-width:]
        rates = [None if n == 0 else h / n for n, h in zip(lookups, hits, strict=True)]
        text = Text()
        for row in bars(rates, height - 1):
            text.append(row.rjust(width) + "\n", style="green")
        step = int(data["step_seconds"])
        first = data["start"] + (len(data["lookups"]) - len(lookups)) * step
        span = len(lookups) * step
        shape = "%H:%M" if span <= 86400 else "%m-%d %H:%M" if step < 86400 else "%m-%d"
        left = datetime.fromtimestamp(first).strftime(shape) if lookups else ""
        seen = [r for r in rates if r is not None]
        right = f"now {seen[-1]:.0%}" if seen else "now"
        text.append(left.ljust(max(width - len(right), 0)) + right, style="dim")
        return text


class Tiers(Panel):
    """Hits by tier and by the tier that held them, and the misses, as bars."""

    def draw(self, data: Any, width: int, height: int) -> Text:
        tiers, sources = data["hits_by_tier"], data["hits_by_source"]
        rows = [
            ("exact", tiers["exact"], "green"),
            ("semantic", tiers["semantic"], "cyan"),
            ("redis", sources.get("redis", 0), "magenta"),
            ("remote", sources.get("remote", 0), "blue"),
            ("miss", data["misses"]["total"], "yellow"),
        ][:height]
        top = max((n for _, n, _ in rows), default=0)
        room = max(width - 9 - 7, 1)
        text = Text()
        for i, (label, n, style) in enumerate(rows):
            filled = 0 if top == 0 else n / top * room
            bar = "█" * int(filled) + (EIGHTHS[round(filled % 1 * 8)].strip() if filled % 1 else "")
            text.append(f"{label:<9}")
            text.append(f"{bar or ('▏' if n else ''):<{room}}", style=style)
            text.append(f"{compact(n):>7}" + ("\n" if i < len(rows) - 1 else ""))
        return text


class Latency(Panel):
    """How long lookups took: a histogram of every lookup's own time (hits and the
    overhead of misses), and the hits' p50 and p99 by tier."""

    LABELS = {0: "<1", 4: "10", 7: "100", 10: "1s+"}

    def draw(self, data: Any, width: int, height: int) -> Text:
        histogram, latency = data["latency_histogram"], data["latency_ms"]
        counts = [sum(values) for values in zip(*(histogram[k] for k in latency), strict=True)]
        bins = len(counts)
        cell = max(1, min(3, width // bins))
        top = max(counts, default=0)
        chart = max(height - 3, 1)
        text = Text()
        fractions: list[float | None] = [None if top == 0 else n / top for n in counts]
        for row in bars(fractions, chart, cell, empty="_"):
            text.append(row + "\n", style="cyan")
        axis = [" "] * (bins * cell)
        for index, label in self.LABELS.items():
            for k, ch in enumerate(label):
                if index * cell + k < len(axis):
                    axis[index * cell + k] = ch
        text.append("".join(axis) + "\n", style="dim")
        for i, tier in enumerate(("exact", "semantic")):
            row = latency[tier]
            p50 = "-" if row["p50"] is None else latency_text(row["p50"])
            p99 = "-" if row["p99"] is None else latency_text(row["p99"])
            text.append(f"{tier[:5]:<6}p50 {p50:>4} p99 {p99:>4}" + ("\n" if i == 0 else ""))
        return text


def latency_text(ms: float) -> str:
    """A latency in ms: two decimals below 10 ms, whole numbers above."""
    return f"{ms:.2f}" if ms < 10 else f"{ms:,.0f}"


def headline(figures: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """The headline figures as (value, note) by widget id."""
    saved = figures["time_saved"]
    estimated = saved["estimated_hits"] + saved["unknown_hits"]
    return {
        "hit-rate": (f"{figures['hit_rate']:.1%}", None),
        "lookups": (compact(figures["lookups"]), None),
        "time-saved": (duration(saved["seconds"]), "est." if estimated else None),
        "tokens": ("~" + compact(figures["tokens_saved"]), None),
        "money": (money(figures["money_saved"]["usd"]), None),
        "entries": (compact(figures["entries"]["total"]), None),
    }
