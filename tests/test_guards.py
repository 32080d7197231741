"""Each guard on hand-picked pairs: where it must veto and where it must not."""

from __future__ import annotations

import pytest

from thrift_cli import MemoryTier, SemanticCache
from thrift_cli.embed import HashEmbedder
from thrift_cli.guards import negation_differs, numbers_differ, order_swapped, veto, words


def guard(fn, a: str, b: str) -> bool:
    return fn(words(a), words(b))


@pytest.mark.parametrize(
    "a,b",
    [
        ("What is 2+2?", "What is 2+3?"),
        ("Is the iPhone 6 waterproof?", "Is the iPhone 7 waterproof?"),
        ("How can I easily pass the JN0-694 exam?", "How can I easily pass the JN0-370 exam?"),
        ("What happened in 1914?", "What happened in 1941?"),
    ],
)
def test_numbers_vetoes(a, b):
    assert guard(numbers_differ, a, b)


@pytest.mark.parametrize(
    "a,b",
    [
        ("What is 2+2?", "what's 2 + 2"),
        ("Which laptop is best under 25000?", "Which laptop is best under 25000 INR?"),
        ("How did Trump win the 2016 election?", "How did Trump win the election?"),  # one side only
        ("Best books of 2017?", "Which were the best books of 2017?"),
    ],
)
def test_numbers_lets_pass(a, b):
    assert not guard(numbers_differ, a, b)


@pytest.mark.parametrize(
    "a,b",
    [
        ("Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?"),
        ("Why do people answer questions on Quora?", "Why don't people answer questions on Quora?"),
        ("Can I use Python for web development?", "Can I never use Python for web development?"),
    ],
)
def test_negation_vetoes(a, b):
    assert guard(negation_differs, a, b)


@pytest.mark.parametrize(
    "a,b",
    [
        (
            "Why don't people answer my questions on Quora?",
            "Why do people never answer my question on Quora?",
        ),
        ("No, LOAD_HU doesn't exist in v2.10.0.", "LOAD_HU is not a feature of v2.10.0."),
        ("How do I learn to code quickly?", "How can I learn to code fast?"),
    ],
)
def test_negation_lets_pass(a, b):
    assert not guard(negation_differs, a, b)


@pytest.mark.parametrize(
    "a,b",
    [
        ("Is Java faster than Python?", "Is Python faster than Java?"),
        ("flights from New York to Florida", "flights from Florida to New York"),
        (
            "How do you convert voltage source to current source?",
            "How do you convert current source to voltage source?",
        ),
        ("What percentage of Muslims are terrorists?", "What percentage of terrorists are Muslim?"),
    ],
)
def test_word_order_vetoes(a, b):
    assert guard(order_swapped, a, b)


@pytest.mark.parametrize(
    "a,b",
    [
        ("How do I learn to code quickly?", "How can I learn to code fast?"),
        # Moved around, but with other words too: a rephrasing, left to the similarity.
        ("In Python, what is the fastest way to reverse a list?", "How do I reverse a list in Python?"),
        ("What is the capital of France?", "What's the capital city of France?"),
        ("Why is the sky blue?", "Why is the sky blue?"),
    ],
)
def test_word_order_lets_pass(a, b):
    assert not guard(order_swapped, a, b)


def test_veto_names_the_first_guard_that_fires():
    assert veto("Is Java faster than Python?", "Is Python faster than Java?") == "word-order"
    # Numbers, like negation, are left to the verifier by default (issue 14); both stay
    # guards for a custom veto.
    assert veto("What is 2+2?", "What is 2+3?") is None
    assert guard(numbers_differ, "What is 2+2?", "What is 2+3?")
    assert veto("How do I learn to code quickly?", "How can I learn to code fast?") is None
    # Negation is measured and off by default (README, "Quality"): only a custom guard uses it.
    assert veto("Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?") is None


def test_a_vetoed_candidate_is_a_miss_and_is_reported():
    cache = SemanticCache(min_similarity=0.5, tier=MemoryTier(), embedder=HashEmbedder())
    cache.store("Is Java faster than Python?", "yes, usually")
    look = cache.explain("Is Python faster than Java?")
    assert look.hit is None
    (vetoed,) = look.vetoes
    assert (vetoed.question, vetoed.guard) == ("Is Java faster than Python?", "word-order")
    assert vetoed.similarity >= 0.5
    unguarded = SemanticCache(min_similarity=0.5, tier=cache.tier, embedder=HashEmbedder(), guards=False)
    assert unguarded.lookup("Is Python faster than Java?") is not None


def test_custom_guard():
    def no_cats(query: str, candidate: str) -> str | None:
        return "cats" if "cat" in query else None

    # verify=False: hashed words have no meaning for the verifier to read.
    cache = SemanticCache(
        min_similarity=0.3, tier=MemoryTier(), embedder=HashEmbedder(), guards=no_cats, verify=False
    )
    cache.store("how do I feed a dog", "twice a day")
    assert cache.lookup("how do I feed a dog daily") is not None
    assert cache.explain("how do I feed a cat").vetoes[0].guard == "cats"
