"""The exact-hit path must stay light: no model, no torch, no shells' heavy deps."""

from __future__ import annotations

import subprocess
import sys

# numpy too: an exact hit reads one row and needs no vector (importing it costs ~70 ms).
HEAVY = [
    "numpy",
    "torch",
    "sentence_transformers",
    "transformers",
    "presidio_analyzer",
    "presidio_anonymizer",
    "spacy",
    "tldextract",
    "textual",
    "thrift_cli.tui",
    "fastapi",
    "supabase",
    "thrift_cli.minilm",
    "thrift_cli.verifier",
    "tokenizers",
    "onnxruntime",
    "onnx",
    "usearch",
    # A plain `thrift ask` is parsed without typer (thrift_cli/cli.py).
    "typer",
    "click",
    # Redis only when it is configured (REDIS_URL or redis_url in config.toml).
    "redis",
    "thrift_cli.tiers.redis",
    "thrift_cli.tiers.resp",
    # The remote only with --remote / remote_lookup, sync only for thrift sync.
    "psycopg",
    "pgvector",
    "thrift_cli.tiers.remote",
    "thrift_cli.remote_db",
    "thrift_sync",
    # The Supabase REST path only with SUPABASE_URL + SUPABASE_KEY, and only then.
    "supabase",
    "httpx",
    "thrift_cli.remote_rest",
]


def test_import_thrift_cli_is_light():
    code = f"import sys, thrift_cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_exact_hit_through_the_cli_loads_no_model(fake_llm, isolated_env):
    ask = ["ask", "What is RAG?", "--", *fake_llm.command()]
    code = (
        "import sys; from thrift_cli.cli import main; rc = main(sys.argv[1:]); "
        f"sys.stderr.write(repr([m for m in {HEAVY!r} if m in sys.modules]) + '\\n'); sys.exit(rc)"
    )
    first = subprocess.run([sys.executable, "-c", code, *ask], capture_output=True, text=True)
    assert first.returncode == 0 and "thrift_cli.minilm" in first.stderr  # a miss embeds
    second = subprocess.run([sys.executable, "-c", code, *ask], capture_output=True, text=True)
    assert second.returncode == 0
    assert second.stderr.strip().splitlines()[-1] == "[]"
    assert len(fake_llm.calls) == 1


# `thrift stats` is a typer command: typer and click are expected; nothing else heavy.
LIGHT = [m for m in HEAVY if m not in ("typer", "click")]


def test_stats_imports_no_model(thrift, fake_llm, isolated_env):
    assert thrift("ask", "What is RAG?", "-n", "main", "--", *fake_llm.command()).code == 0
    code = (
        "import sys; from thrift_cli.cli import main; rc = main(sys.argv[1:]); "
        f"sys.stderr.write(repr([m for m in {LIGHT!r} if m in sys.modules]) + '\\n'); sys.exit(rc)"
    )
    ran = subprocess.run([sys.executable, "-c", code, "stats"], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.strip().splitlines()[-1] == "[]"


def test_export_loads_no_model(thrift, isolated_env):
    """`thrift export --vectors` copies stored bytes: no model, no numpy, no remote."""
    from test_export import entry, fill

    fill(isolated_env, [entry("docs", "What is RAG?")])
    code = (  # typer and click are the export command's own shell, as for stats
        "import sys; from thrift_cli.cli import main; rc = main(sys.argv[1:]); "
        f"sys.stderr.write(repr([m for m in {LIGHT!r} if m in sys.modules]) + '\\n'); sys.exit(rc)"
    )
    ran = subprocess.run([sys.executable, "-c", code, "export", "--vectors"], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.count("\n") == 1 and '"embedding":"' in ran.stdout
    assert ran.stderr.strip().splitlines()[-1] == "[]"


def test_importing_privacy_imports_no_presidio():
    """Presidio and spaCy (~1 s) load on the first scrub, not when privacy.py is imported."""
    heavy = ["presidio_analyzer", "presidio_anonymizer", "spacy", "tldextract", "phonenumbers", "numpy"]
    code = (
        "import sys; from thrift_cli import privacy; s = privacy.Scrubber(); privacy.Scrubber().scrub('')\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
