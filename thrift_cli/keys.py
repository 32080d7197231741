"""Question normalisation, exact-tier keys and namespaces derived from a command line."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import unicodedata

# Bump the tag whenever normalisation or the key layout changes, so old keys never
# silently collide with new ones (llm's HASH_PREFIX idea).
KEY_PREFIX = "v1:"
PLACEHOLDER = "{}"

_SPACE = re.compile(r"\s+")
_TRAILING_PUNCT = re.compile(r"[\s?.!]+$")


def normalize(question: str) -> str:
    """The form two questions must share to be the *same* question.

    NFKC, case-folded, runs of whitespace collapsed, trailing `?`, `.`, `!` dropped:
    "What is  semantic caching?" and "what is semantic caching" are one entry.
    """
    text = unicodedata.normalize("NFKC", question).casefold()
    text = _SPACE.sub(" ", text).strip()
    # "???" and "!!!" stay apart: punctuation is dropped only from a question with words.
    return _TRAILING_PUNCT.sub("", text) or text


def exact_key(namespace: str, question: str) -> str:
    """Tagged hash of (namespace, normalized question): the exact tier's key."""
    canonical = json.dumps([namespace, normalize(question)], ensure_ascii=False, separators=(",", ":"))
    return KEY_PREFIX + hashlib.blake2b(canonical.encode("utf-8"), digest_size=20).hexdigest()


def command_namespace(command: list[str], *, stdin: bool = False) -> str:
    """The namespace of answers produced by `command`: its full command line.

    `llm -m gpt-4o` and `llm -m claude` differ, so they never share answers. The
    question's position is part of it: appending the question and an explicit `{}` at the
    end are the same call; piping it on stdin is written `< {}`.
    """
    template = list(command)
    if not stdin and PLACEHOLDER not in template:
        template.append(PLACEHOLDER)
    line = " ".join(arg if arg == PLACEHOLDER else shlex.quote(arg) for arg in template)
    return line + " < " + PLACEHOLDER if stdin else line


def api_key_namespace(api_key: str) -> str:
    """ThriftLM's `api_key` scopes a cache; we keep only a hash of it, never the key."""
    return "key:" + hashlib.blake2b(api_key.encode("utf-8"), digest_size=12).hexdigest()
