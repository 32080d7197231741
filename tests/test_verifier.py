"""The verifier (thrift_cli/verifier/): the shipped weights, read in numpy, as the cache
and `thrift ask` use them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from thrift_cli import SemanticCache
from thrift_cli.cache import DEFAULT_MIN_SIMILARITY, NO_VERIFIER_MIN_SIMILARITY
from thrift_cli.embed import default_embedder
from thrift_cli.errors import EmbedError
from thrift_cli.tiers.memory import MemoryTier
from thrift_cli.verifier import HERE, Card, Verifier

# From tests/data/swaps.tsv: a paraphrase, a sibling swap and an entity swap, each at a
# cosine the default floor lets through; then a pair both cut to the card's max_tokens.
PARAPHRASE = ("How do I install Docker on Ubuntu?", "What are the steps to install Docker on Ubuntu?")
SIBLING = ("How do I increase the font size in VS Code?", "How do I decrease the font size in VS Code?")
ENTITY = ("How do I get from Milan to Venice by train?", "How do I get from Milan to Florence by train?")
PAIRS = [PARAPHRASE, SIBLING, ENTITY, ("word " * 300, "other " * 200)]


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier()


def torch_scores(pairs: list[tuple[str, str]]) -> np.ndarray:
    """The same weights run by transformers' BertModel in torch (float32)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertModel

    from thrift_cli.minilm import model_dir, read_safetensors

    card = Card.read(HERE / "card.json")
    config = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=card.layers,
        num_attention_heads=12,
        intermediate_size=1536,
    )
    model = BertModel(config, add_pooling_layer=False).eval()
    weights = read_safetensors(HERE / "weights.safetensors")
    state = {
        k: torch.from_numpy(np.asarray(v, dtype=np.float32))
        for k, v in weights.items()
        if not k.startswith("head.")
    }
    word = read_safetensors(model_dir() / "model.safetensors")["embeddings.word_embeddings.weight"]
    state["embeddings.word_embeddings.weight"] = torch.from_numpy(np.array(word))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing)
    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(card.max_tokens, strategy="longest_first")
    out = []
    with torch.no_grad():
        for a, b in pairs:
            e = tokenizer.encode(a, b)
            ids, types = torch.tensor([e.ids]), torch.tensor([e.type_ids])
            hidden = model(input_ids=ids, token_type_ids=types).last_hidden_state[0].mean(0).numpy()
            logit = hidden @ np.asarray(weights["head.weight"], np.float32)[0] + np.float32(
                weights["head.bias"][0]
            )
            out.append(1 / (1 + np.exp(-logit)))
    return np.array(out)


def test_numpy_scores_are_torch_scores(verifier: Verifier) -> None:
    ours = verifier.scores(PAIRS)
    assert np.allclose(ours, torch_scores(PAIRS), atol=2e-4)
    assert np.allclose(ours, [verifier.score(a, b) for a, b in PAIRS], atol=1e-6)  # batched = alone
    assert ((ours > 0) & (ours < 1)).all()


def test_it_tells_a_paraphrase_from_a_swap(verifier: Verifier) -> None:
    # (query, candidate), as the cache asks.
    paraphrase, swapped, entity = verifier.scores([(q, c) for c, q in PAIRS[:3]])
    assert paraphrase >= verifier.threshold > max(swapped, entity)


def test_the_weights_are_small_and_their_checksum_is_checked(tmp_path) -> None:
    card = json.loads((HERE / "card.json").read_text())
    assert (HERE / "weights.safetensors").stat().st_size == card["bytes"] < 25 * 2**20
    for name in ("card.json", "weights.safetensors"):
        shutil.copy(HERE / name, tmp_path / name)
    assert Verifier(tmp_path).threshold == card["threshold"]
    data = bytearray((tmp_path / "weights.safetensors").read_bytes())
    data[-1] ^= 1  # one bit of the last weight
    (tmp_path / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(EmbedError, match="checksum"):
        Verifier(tmp_path)


def test_the_card_says_how_it_was_made() -> None:
    card = json.loads((HERE / "card.json").read_text())
    assert card["hyperparameters"]["seed"] and card["hyperparameters"]["epochs"] >= 1
    assert card["data"]["validation"].startswith("bench_quality.Splits")
    assert card["floor"] == DEFAULT_MIN_SIMILARITY  # the default floor is the calibrated one


def cache(**kw) -> SemanticCache:
    return SemanticCache(
        namespace="v", tier=MemoryTier(), shared=(), embedder=default_embedder(warm=True), scrub=False, **kw
    )


def test_the_cache_serves_what_it_accepts_and_reports_the_score() -> None:
    c = cache()
    c.store(PARAPHRASE[0], "apt install docker.io")
    look = c.explain(PARAPHRASE[1])
    assert look.hit is not None and look.hit.answer == "apt install docker.io"
    assert look.verdict is not None and look.verdict.served
    assert look.verdict.score >= look.verdict.threshold


def test_the_cache_refuses_what_it_vetoes() -> None:
    c = cache()
    c.store(SIBLING[0], "Ctrl +")
    look = c.explain(SIBLING[1])
    assert (
        look.best is not None and look.best.similarity >= NO_VERIFIER_MIN_SIMILARITY
    )  # the cosine serves it
    assert look.hit is None
    assert look.verdict is not None and not look.verdict.served
    (veto,) = look.vetoes
    assert veto.guard == "verifier" and veto.score == look.verdict.score
    # Without the verifier the cosine and the guards serve the wrong answer, at 0.85.
    off = cache(verify=False)
    assert off.min_similarity == NO_VERIFIER_MIN_SIMILARITY and c.min_similarity == DEFAULT_MIN_SIMILARITY
    off.store(SIBLING[0], "Ctrl +")
    unverified = off.explain(SIBLING[1])
    assert unverified.hit is not None and unverified.verdict is None
    assert c.explain(SIBLING[1], verify=False).hit is not None


def run_ask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thrift_cli", "ask", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_ask_reports_the_verifier_in_v_and_json(isolated_env, fake_llm) -> None:
    import os

    env = dict(os.environ)
    command = ["--", *fake_llm.command()]
    for question in (SIBLING[0], PARAPHRASE[0]):
        assert run_ask(env, question, *command).returncode == 0
    vetoed = run_ask(env, "-v", "--lookup-only", SIBLING[1], *command)
    assert vetoed.returncode == 3, vetoed.stderr
    assert f"vetoed by the verifier: {SIBLING[0]!r}" in vetoed.stderr
    assert "thrift:   verifier: score " in vetoed.stderr and ": veto" in vetoed.stderr
    served = json.loads(
        run_ask(env, "--json", "--lookup-only", PARAPHRASE[1], *command).stderr.splitlines()[-1]
    )
    assert served["tier"] == "semantic" and served["matched_question"] == PARAPHRASE[0]
    assert served["verifier"]["decision"] == "serve"
    assert served["verifier"]["score"] >= served["verifier"]["threshold"] > 0
    for flags, extra in ((["--no-verify"], {}), ([], {"THRIFT_VERIFY": "false"})):
        off = run_ask({**env, **extra}, "--json", "--lookup-only", *flags, SIBLING[1], *command)
        report = json.loads(off.stderr.splitlines()[-1])
        assert report["verifier"] is None and report["tier"] == "semantic"  # the wrong answer, unverified
    bad = run_ask({**env, "THRIFT_VERIFY": "maybe"}, "--lookup-only", SIBLING[1], *command)
    assert bad.returncode == 2 and "THRIFT_VERIFY" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert len(fake_llm.calls) == 2


def test_a_verified_lookup_needs_no_torch(isolated_env) -> None:
    code = (
        "import sys\n"
        "from thrift_cli import SemanticCache\n"
        "c = SemanticCache(namespace='v', scrub=False)\n"
        f"c.store({PARAPHRASE[0]!r}, 'x')\n"
        f"look = c.explain({PARAPHRASE[1]!r})\n"
        "assert look.verdict is not None, look\n"
        "print([m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_it_loads_only_for_a_candidate_above_the_floor(isolated_env) -> None:
    code = (
        "import sys\n"
        "from thrift_cli import SemanticCache\n"
        "c = SemanticCache(namespace='v', scrub=False)\n"
        f"c.store({PARAPHRASE[0]!r}, 'x')\n"
        "far = c.explain('What is the boiling point of water at sea level?')\n"
        "assert far.hit is None and far.best.similarity < c.min_similarity and far.verdict is None\n"
        "print('thrift_cli.verifier' in sys.modules)\n"
        f"near = c.explain({PARAPHRASE[1]!r})\n"
        "print('thrift_cli.verifier' in sys.modules, near.verdict is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True"]


def test_missing_weights_are_one_clear_error(tmp_path) -> None:
    shutil.copy(HERE / "card.json", tmp_path / "card.json")
    with pytest.raises(EmbedError, match="missing or unreadable"):
        Verifier(tmp_path)
