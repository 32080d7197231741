"""The dialogs of `thrift top`: an entry, the forget confirmation, the namespace filter,
the help. Each is a modal screen over the dashboard; escape closes it.

Text from the cache (questions, answers) is always shown as `rich.text.Text`, never as
markup: a question holding `[bold]` must show those characters, not bold type.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Static

# In the app's CSS (a screen's DEFAULT_CSS is scoped to the screen's own children).
MODAL_CSS = """
ModalScreen {
    align: center middle;
}
ModalScreen > Vertical {
    width: 90%;
    max-width: 110;
    height: auto;
    max-height: 90%;
    border: thick $primary;
    background: $surface;
    padding: 0 1;
}
ModalScreen .hint {
    color: $text-muted;
}
EntryScreen VerticalScroll {
    height: auto;
    max-height: 30;
}
"""


def _when(at: float | None) -> str:
    return "never" if at is None else datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


class EntryScreen(ModalScreen[str | None]):
    """One entry as stored: its question, answer, hits and the lookups a guard refused it
    to. `f` here forgets it (dismissing with its id); escape or q closes."""

    BINDINGS = [
        Binding("escape,q,enter", "dismiss(None)", "close"),
        Binding("f", "forget", "forget"),
    ]

    def __init__(self, entry: dict[str, Any] | None, lookup: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.entry = entry
        self.lookup = lookup

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "entry"
            if self.entry is None:
                yield Static(Text(self._no_entry()))
            else:
                e = self.entry
                facts = (
                    f"namespace {e['namespace']} · {e['hits']:,} hit{'s' * (e['hits'] != 1)}, last "
                    f"{_when(e['last_hit_at'])} · stored {_when(e['created_at'])} · "
                    + ("never expires" if e["expires_at"] is None else f"expires {_when(e['expires_at'])}")
                )
                yield Static(Text(e["question"], style="bold"))
                if self.lookup is not None and self.lookup.get("matched"):
                    asked = self.lookup["question"]
                    yield Static(Text(f"served for: {asked} (similarity {self.lookup['similarity']:.3f})"))
                yield Static(Text(facts), classes="hint")
                with VerticalScroll():
                    yield Static(Text(e["answer"]))
                if e["vetoes"]:
                    lines = Text("refused by a guard to:\n", style="bold")
                    for v in e["vetoes"]:
                        lines.append(
                            f"  {_when(v['at'])}  {v['guard']:<11} {v['similarity']:.3f}  {v['question']}\n"
                        )
                    yield Static(lines)
                yield Static(Text(f"id {e['id']}"), classes="hint")
            yield Static(Text("f forget · escape close"), classes="hint")

    def _no_entry(self) -> str:
        lookup = self.lookup or {}
        if lookup.get("entry_id"):
            return "This entry is no longer in the cache (forgotten or expired and purged)."
        outcome = lookup.get("outcome") or "not stored"
        return f"This lookup stored no entry: {outcome}.\n{lookup.get('question') or ''}"

    def action_forget(self) -> None:
        self.dismiss(None if self.entry is None else self.entry["id"])


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: y confirms, n or escape declines."""

    BINDINGS = [Binding("y", "dismiss(True)", "yes"), Binding("n,escape", "dismiss(False)", "no")]

    def __init__(self, question: str, detail: str) -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "confirm"
            yield Static(Text(self.question, style="bold"))
            yield Static(Text(self.detail))
            yield Static(Text("y yes · n no"), classes="hint")


class FilterScreen(ModalScreen[str | None]):
    """The namespace to show: typed (completing from the cache's namespaces); empty shows
    them all. Dismisses with the text, or None on escape (nothing changes)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]

    def __init__(self, current: str | None, namespaces: list[str]) -> None:
        super().__init__()
        self.current = current
        self.namespaces = namespaces

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "filter by namespace"
            yield Input(
                value=self.current or "",
                placeholder="namespace (empty: all of them)",
                suggester=SuggestFromList(self.namespaces, case_sensitive=True),
                id="namespace",
            )
            shown = ", ".join(self.namespaces[:8]) + (" ..." if len(self.namespaces) > 8 else "")
            yield Static(Text(f"in the cache: {shown or 'none yet'}"), classes="hint")
            yield Static(Text("enter apply · right arrow complete · escape cancel"), classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())


HELP = """\
q        quit
p        pause / resume the live refresh
/        filter by namespace (empty: all)
t        change the time window: {windows}
1 2 3    show the live feed, the top questions, the vetoes
enter    show the selected row's entry: question, answer, hits, vetoes
f        forget the selected entry from every tier (asks first)
?        this help

The figures are those of `thrift stats` for the same window (`thrift stats --json`).
Time saved is measured from each entry's own LLM call where thrift ran it, estimated
at the namespace's median call where it did not (imported, pulled entries)."""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss(None)", "close")]

    def __init__(self, windows: str) -> None:
        super().__init__()
        self.windows = windows

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "thrift top: keys"
            yield Static(Text(HELP.format(windows=self.windows)))
            yield Static(Text("escape close"), classes="hint")
