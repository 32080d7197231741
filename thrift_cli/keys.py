"""Question normalisation, exact-tier keys and namespaces derived from a command line."""

from __future__ import annotations

import hashlib
import json
import os
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

    `llm -m gpt-4o` and `llm -m claude` differ, so they never share answers. A program
    given as a path (`./ask.sh`, `bin/llm`) is named by its real path, so the same script
    reached two ways shares answers and two projects' `./ask.sh` do not; a bare name
    looked up on PATH (`llm`) stays a name, the same on every machine. The question's
    position is part of it: appending the question and an explicit `{}` at the end are the
    same call; piping it on stdin is written `< {}`, and there a `{}` argument is a
    literal (runner.command_argv leaves it alone), so it is quoted.
    """
    template = list(command)
    if template and "/" in template[0]:
        template[0] = os.path.realpath(template[0])
    if stdin:
        return " ".join(shlex.quote(arg) for arg in template) + " < " + PLACEHOLDER
    if PLACEHOLDER not in template:
        template.append(PLACEHOLDER)
    return " ".join(arg if arg == PLACEHOLDER else shlex.quote(arg) for arg in template)


def api_key_namespace(api_key: str) -> str:
    """ThriftLM's `api_key` scopes a cache; we keep only a hash of it, never the key."""
    return "key:" + hashlib.blake2b(api_key.encode("utf-8"), digest_size=12).hexdigest()
