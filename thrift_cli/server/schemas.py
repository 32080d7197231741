"""The API's request and response bodies, strict: what a client may send, exactly.

Unknown fields are refused (a typo such as `"namespce"` is an error, not a silent
default), no value is coerced (`false` is not a number, `"5"` is not a number), vectors
have exactly 384 finite numbers, and every text has a stated maximum. Anything else is a
422 naming the field. ThriftLM's bodies are all accepted as they are, `api_key` included.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from thrift_cli.config import TENANT_PATTERN

DIM = 384  # all-MiniLM-L6-v2, the only model a thrift cache holds
MAX_BODY_BYTES = 1024 * 1024  # the whole request body, checked before it is parsed
MAX_QUERY_CHARS = 32 * 1024
MAX_RESPONSE_CHARS = 512 * 1024
MAX_TTL_S = 10 * 365 * 86400.0

Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"\S")]
Answer = Annotated[str, StringConstraints(min_length=1, max_length=MAX_RESPONSE_CHARS, pattern=r"\S")]
Namespace = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"\S")]
ApiKey = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Finite = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
Vector = Annotated[list[Finite], Field(min_length=DIM, max_length=DIM)]
Similarity = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
Ttl = Annotated[float, Field(gt=0.0, le=MAX_TTL_S, allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextLookup(Strict):
    """Look up a question: exact, then paraphrases, with the guards (as `thrift ask`)."""

    query: Text
    namespace: Namespace | None = None
    min_similarity: Similarity | None = None
    api_key: ApiKey | None = None


class VectorLookup(Strict):
    """ThriftLM's lookup by embedding: the nearest entry, if similar enough. With no text
    there is no exact tier and no guard (they read the question): prefer `query`."""

    embedding: Vector
    namespace: Namespace | None = None
    min_similarity: Similarity | None = None
    api_key: ApiKey | None = None


class StoreRequest(Strict):
    """Store an answer. An `embedding` (ThriftLM's clients send one) is checked and not
    used: thrift embeds the query itself, so every vector in a cache comes from one model."""

    query: Text
    response: Answer
    namespace: Namespace | None = None
    ttl: Ttl | None = None
    replace: bool = False
    embedding: Vector | None = None
    api_key: ApiKey | None = None


class ForgetRequest(Strict):
    """Forget the entry stored for exactly `query`, or the entry `id`."""

    query: Text | None = None
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    namespace: Namespace | None = None
    api_key: ApiKey | None = None


class KeyRequest(Strict):
    """ThriftLM's `{"email"}`; `tenant` gives the new key an existing tenant (a team's
    second key) instead of a new one."""

    email: (
        Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None
    ) = None
    tenant: Annotated[str, StringConstraints(pattern=rf"^{TENANT_PATTERN}$")] | None = None
    api_key: ApiKey | None = None


class RevokeRequest(Strict):
    """The key to revoke (`key`: `api_key` is, as everywhere, the caller's own)."""

    key: ApiKey
    api_key: ApiKey | None = None


class RevokeResponse(BaseModel):
    revoked: bool  # false: no such key, or revoked already


class LookupResponse(BaseModel):
    """ThriftLM's `{"response": ...}` (null on a miss), and how the answer was found."""

    response: str | None
    tier: str | None = None  # exact | semantic; null on a miss
    similarity: float | None = None
    id: str | None = None
    namespace: str
    latency_ms: float
    # The verifier's score of the candidate it read (served or vetoed); null when it read none.
    verifier_score: float | None = None


class StoreResponse(BaseModel):
    status: str = "ok"
    id: str
    namespace: str
    stored: bool  # false: an entry for this question was kept (pass replace to overwrite)


class ForgetResponse(BaseModel):
    forgotten: int
    ids: list[str]


class KeyResponse(BaseModel):
    api_key: str
    tenant: str


class Health(BaseModel):
    status: str
    version: str


class Problem(BaseModel):
    detail: str
