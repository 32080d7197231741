"""`thrift forget`: the real command on a real store (and a real Redis), each way of naming
what goes (exact question, --similar, --id, --namespace --all), what it prints, its exit
codes, and what it must never do (load the model, create a cache, delete half a forget)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import thrift_executable
from redis_servers import closed_port
from test_read_only import as_user, snapshot

from thrift_cli import hnsw, keys
from thrift_cli.models import CacheEntry
from thrift_cli.store import SQLiteStore
from thrift_cli.tiers.redis import RedisTier

QUESTION, PARAPHRASE = "How do I learn to code quickly?", "How can I learn to code fast?"
OTHER = "What is the capital of France?"
HEAVY = ["numpy", "thrift_cli.minilm", "thrift_cli.minilm_onnx", "onnxruntime", "tokenizers", "torch"]


def ask(thrift, fake_llm, question, *extra, env=None):
    return thrift("ask", "--json", *extra, question, "--", *fake_llm.command(), env=env)


def forget(thrift, fake_llm, *args, env=None, input=None):
    return thrift("forget", *args, "--", *fake_llm.command(), env=env, input=input)


def lines(ran) -> list[str]:
    return ran.stdout.decode().splitlines()


def one_error_line(ran, code: int, *words: str) -> str:
    assert ran.code == code, ran.stderr
    assert "Traceback" not in ran.stderr
    errors = ran.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("thrift: "), ran.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


# -- the exact question --------------------------------------------------------------------


def test_forget_makes_the_next_ask_run_the_command_again(thrift, fake_llm):
    first = ask(thrift, fake_llm, QUESTION)
    namespace = first.report["namespace"]
    assert first.code == 0 and len(fake_llm.calls) == 1
    assert ask(thrift, fake_llm, QUESTION).report["tier"] == "exact" and len(fake_llm.calls) == 1

    ran = forget(thrift, fake_llm, QUESTION)
    assert ran.code == 0, ran.stderr
    assert lines(ran) == [f"forgot {QUESTION!r} [namespace {namespace}] from local"]
    assert ran.stderr == ""

    again = ask(thrift, fake_llm, QUESTION)
    assert again.report["tier"] == "miss" and again.report["stored"] is True
    assert len(fake_llm.calls) == 2  # the command ran again

    assert forget(thrift, fake_llm, QUESTION).code == 0
    nothing = forget(thrift, fake_llm, QUESTION)
    one_error_line(nothing, 3, "nothing cached for exactly", repr(QUESTION), "--similar")
    assert nothing.stdout == b""


def test_the_exact_question_is_matched_as_ask_matches_it(thrift, fake_llm):
    """Case, spacing and trailing punctuation do not make another question (keys.normalize)."""
    assert ask(thrift, fake_llm, QUESTION).code == 0
    assert forget(thrift, fake_llm, "  how do I learn to  code quickly  ").code == 0
    assert ask(thrift, fake_llm, QUESTION).report["tier"] == "miss"


def test_a_paraphrase_is_not_the_exact_question(thrift, fake_llm):
    assert ask(thrift, fake_llm, QUESTION).code == 0
    one_error_line(forget(thrift, fake_llm, PARAPHRASE), 3, "--similar")
    assert ask(thrift, fake_llm, QUESTION).report["tier"] == "exact"  # still there


def test_the_namespace_is_the_one_ask_uses(thrift, fake_llm):
    """Another model's command line is another namespace; -n and --stdin as in ask."""
    assert ask(thrift, fake_llm, QUESTION).code == 0
    other_model = thrift("forget", QUESTION, "--", *fake_llm.command("--model", "other"))
    assert other_model.code == 3
    # --stdin changes the namespace: an answer asked with it is forgotten with it.
    piped = thrift("ask", "--stdin", OTHER, "--", *fake_llm.command("--stdin"))
    assert piped.code == 0 and len(fake_llm.calls) == 2
    assert thrift("forget", OTHER, "--", *fake_llm.command("--stdin")).code == 3
    assert thrift("forget", "--stdin", OTHER, "--", *fake_llm.command("--stdin")).code == 0
    # -n names the namespace instead of a command, from the flag or THRIFT_NAMESPACE.
    assert thrift("ask", "-n", "team-docs", OTHER, "--", *fake_llm.command()).code == 0
    assert thrift("forget", OTHER, env={"THRIFT_NAMESPACE": "team-docs"}).code == 0
    assert thrift("ask", "-n", "team-docs", OTHER, "--", *fake_llm.command()).code == 0
    ran = thrift("forget", "-n", "team-docs", OTHER)
    assert lines(ran) == [f"forgot {OTHER!r} [namespace team-docs] from local"]
    # The first answer, in the command's namespace, was never touched.
    assert ask(thrift, fake_llm, QUESTION).report["tier"] == "exact"


def test_the_question_can_come_on_stdin(thrift, fake_llm):
    assert ask(thrift, fake_llm, QUESTION).code == 0
    ran = forget(thrift, fake_llm, input=(QUESTION + "\n").encode())
    assert ran.code == 0 and f"forgot {QUESTION!r}" in ran.stdout.decode()
    assert forget(thrift, fake_llm, "-", input=QUESTION.encode()).code == 3


# -- --similar ---------------------------------------------------------------------------


def test_similar_forgets_the_wrong_paraphrase_hit(thrift, fake_llm):
    first = ask(thrift, fake_llm, QUESTION)
    namespace = first.report["namespace"]
    served = ask(thrift, fake_llm, PARAPHRASE)
    assert served.report["tier"] == "semantic" and served.report["matched_question"] == QUESTION
    assert len(fake_llm.calls) == 1  # the paraphrase got QUESTION's answer

    ran = forget(thrift, fake_llm, "--similar", PARAPHRASE)
    assert ran.code == 0, ran.stderr
    matched, deleted = lines(ran)
    assert matched.startswith(f"matched {QUESTION!r} (semantic hit from local, similarity 0.")
    similarity = float(matched.rsplit("similarity ", 1)[1].rstrip(")"))
    assert similarity == pytest.approx(served.report["similarity"], abs=0.001)
    assert deleted == f"forgot {QUESTION!r} [namespace {namespace}] from local"

    again = ask(thrift, fake_llm, PARAPHRASE)
    assert again.report["tier"] == "miss" and len(fake_llm.calls) == 2
    assert fake_llm.calls[-1] == PARAPHRASE
    # What is cached now is the paraphrase's own answer, which --similar of QUESTION finds.
    mine = forget(thrift, fake_llm, "--similar", "--json", QUESTION)
    report = json.loads(mine.stdout)
    assert report["matched"]["question"] == PARAPHRASE and report["matched"]["tier"] == "semantic"
    assert report["matched"]["id"] == again.report["entry_id"]
    assert [d["question"] for d in report["deleted"]] == [PARAPHRASE]


def test_similar_follows_min_similarity_as_ask_does(thrift, fake_llm):
    assert ask(thrift, fake_llm, QUESTION).code == 0
    # So strict that the paraphrase would be a miss for ask: nothing to forget, and the
    # nearest entry is named.
    strict = forget(thrift, fake_llm, "--similar", "-s", "0.999", PARAPHRASE)
    one_error_line(strict, 3, "or a paraphrase", "closest: 0.", repr(QUESTION))
    strict_env = forget(thrift, fake_llm, "--similar", PARAPHRASE, env={"THRIFT_MIN_SIMILARITY": "0.999"})
    assert strict_env.code == 3
    assert ask(thrift, fake_llm, QUESTION).report["tier"] == "exact"
    assert forget(thrift, fake_llm, "--similar", PARAPHRASE).code == 0


def test_similar_of_the_question_itself_is_an_exact_hit(thrift, fake_llm):
    assert ask(thrift, fake_llm, QUESTION).code == 0
    ran = forget(thrift, fake_llm, "--similar", QUESTION)
    assert lines(ran)[0] == f"matched {QUESTION!r} (exact hit from local, similarity 1.000)"


# -- --id --------------------------------------------------------------------------------


def test_id_forgets_that_entry_only(thrift, fake_llm):
    first = ask(thrift, fake_llm, QUESTION)
    other = ask(thrift, fake_llm, OTHER)
    entry_id = first.report["entry_id"]
    ran = thrift("forget", "--id", entry_id, "--json")
    assert ran.code == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["deleted"] == [
        {"id": entry_id, "question": QUESTION, "namespace": first.report["namespace"], "tiers": ["local"]}
    ]
    assert report["tiers"] == {"local": 1} and report["exit_code"] == 0 and report["error"] is None
    assert ask(thrift, fake_llm, QUESTION).report["tier"] == "miss"
    assert ask(thrift, fake_llm, OTHER).report["entry_id"] == other.report["entry_id"]
    gone = thrift("forget", "--id", entry_id)
    one_error_line(gone, 3, "no entry has the id", entry_id)


# -- --namespace NS --all -------------------------------------------------------------------


def test_all_forgets_every_entry_of_the_namespace_and_nothing_else(thrift, fake_llm):
    for question in (QUESTION, OTHER):
        assert thrift("ask", "-n", "old-docs", question, "--", *fake_llm.command()).code == 0
    assert thrift("ask", "-n", "new-docs", QUESTION, "--", *fake_llm.command()).code == 0
    kept = ask(thrift, fake_llm, OTHER)  # the command's own namespace

    ran = thrift("forget", "-n", "old-docs", "--all", "--yes")
    assert ran.code == 0, ran.stderr
    assert sorted(lines(ran)) == sorted(
        [
            f"forgot {QUESTION!r} [namespace old-docs] from local",
            f"forgot {OTHER!r} [namespace old-docs] from local",
        ]
    )
    for question in (QUESTION, OTHER):
        miss = thrift("ask", "--lookup-only", "-n", "old-docs", question)
        assert miss.code == 3  # nor any paraphrase: the namespace is empty
    assert thrift("ask", "--lookup-only", "-n", "new-docs", QUESTION).code == 0
    assert ask(thrift, fake_llm, OTHER).report["entry_id"] == kept.report["entry_id"]

    again = thrift("forget", "-n", "old-docs", "--all", "--yes", "--json")
    assert again.code == 3
    assert json.loads(again.stdout)["deleted"] == [] and "nothing cached in" in again.stderr


def test_all_off_a_terminal_without_yes_refuses_and_deletes_nothing(thrift, fake_llm):
    assert thrift("ask", "-n", "docs", QUESTION, "--", *fake_llm.command()).code == 0
    ran = thrift("forget", "-n", "docs", "--all")
    one_error_line(ran, 2, "--yes")
    assert ran.stdout == b""
    assert thrift("ask", "--lookup-only", "-n", "docs", QUESTION).code == 0


def _on_a_terminal(*args: str, answer: bytes) -> subprocess.CompletedProcess[bytes]:
    """`thrift` with a pseudo-terminal as stdin, on which `answer` is typed."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [*thrift_executable(), *args], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        os.close(slave)
        os.write(master, answer)
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(master)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_all_on_a_terminal_asks_first(thrift, fake_llm):
    for question in (QUESTION, OTHER):
        assert thrift("ask", "-n", "docs", question, "--", *fake_llm.command()).code == 0
    declined = _on_a_terminal("forget", "-n", "docs", "--all", answer=b"n\n")
    assert declined.returncode == 1 and declined.stdout == b""
    assert "Forget all 2 entries of [namespace docs] (2 in local)? [y/N]" in declined.stderr.decode()
    assert "not confirmed; nothing forgotten" in declined.stderr.decode()
    assert thrift("ask", "--lookup-only", "-n", "docs", QUESTION).code == 0

    accepted = _on_a_terminal("forget", "-n", "docs", "--all", answer=b"y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert len(accepted.stdout.decode().splitlines()) == 2
    assert thrift("ask", "--lookup-only", "-n", "docs", QUESTION).code == 3


def test_delete_namespace_keeps_vectors_and_hnsw_graphs_consistent(isolated_env, monkeypatch):
    """One transaction removes the rows and their vectors; the namespace's graph is no
    longer named (and its file goes); a store with the namespace in memory sees it empty."""
    monkeypatch.setenv("THRIFT_HNSW_MIN_ENTRIES", "10")
    rng = np.random.default_rng(7)

    def vector() -> np.ndarray:
        v = rng.standard_normal(384).astype(np.float32)
        return v / np.linalg.norm(v)

    def entry(namespace: str, question: str) -> CacheEntry:
        return CacheEntry(namespace, question, keys.exact_key(namespace, question), f"answer to {question}")

    path = isolated_env / "cache.db"
    store = SQLiteStore(path)
    warm = SQLiteStore(path, memory_index=True)  # another process's view, e.g. a helper's
    try:
        store.store_many([(entry(ns, f"q{i}"), vector()) for ns in ("gone", "kept") for i in range(30)])
        for ns in ("gone", "kept"):
            assert store.build_index(ns, wait=True) is not None
        probe = vector()
        assert len(warm.search("gone", probe, 5, time.time())) == 5
        graphs = lambda ns: list((isolated_env / "index").glob(f"{hnsw.digest(ns)}.*.usearch"))  # noqa: E731
        assert graphs("gone") and graphs("kept")

        assert store.delete_namespace("gone") == 30
        assert store.count("gone") == 0 and store.count("kept") == 30
        vector_rows = store._read("SELECT namespace, count(*) FROM entry_vectors GROUP BY namespace")
        assert vector_rows == [("kept", 30)]
        assert store.meta(hnsw.meta_key("gone")) is None and store.meta(hnsw.meta_key("kept")) is not None
        assert graphs("gone") == [] and graphs("kept")
        assert store.search("gone", probe, 5, time.time()) == []
        assert warm.search("gone", probe, 5, time.time()) == []
        assert len(warm.search("kept", probe, 5, time.time())) == 5
        # The namespace fills again, and is searched as a new one.
        fresh = vector()
        store.store(entry("gone", "new question"), fresh)
        for reader in (store, warm):
            found = reader.search("gone", fresh, 5, time.time())
            assert [c.entry.question for c in found] == ["new question"]
        assert store.delete_namespace("nothing here") == 0
    finally:
        store.close()
        warm.close()


# -- what forget must not do ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args,words",
    [
        (["--id", "abc", QUESTION], ["--id", "question"]),
        (["--id", "abc", "--similar"], ["--id", "--similar"]),
        (["--id", "abc", "--all", "-n", "x"], ["--id", "--all"]),
        (["--id", "abc", "-n", "x"], ["--id", "--namespace"]),
        (["--id", ""], ["--id", "empty"]),
        (["--all", "--yes"], ["--all", "--namespace"]),
        (["--all", "--yes", "-n", "x", QUESTION], ["--all", "question"]),
        (["--all", "--yes", "-n", "x", "--similar"], ["--all", "--similar"]),
        (["--all", "--yes", "-n", " "], ["--namespace", "blank"]),
        ([QUESTION], ["missing the LLM command"]),
        ([], ["missing the LLM command"]),
        (["-n", "x", "-s", "0.9", QUESTION], ["--min-similarity", "--similar"]),
        (["-n", "x", "--similar", "-s", "1.5", QUESTION], ["--min-similarity"]),
        (["-n", "x", "--stdin", QUESTION], ["--stdin", "command"]),
        (["-n", "x", "   "], ["empty"]),
        (["-n", "x"], ["empty"]),  # stdin is /dev/null: an empty question
        (["--no-such-option"], ["No such option"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) and all(isinstance(a, str) for a in v) else None,
)
def test_bad_usage_is_one_line_and_exit_2_and_creates_nothing(thrift, isolated_env, args, words):
    one_error_line(thrift("forget", *args), 2, *words)
    assert not isolated_env.exists()


def test_bad_usage_with_a_command(thrift, fake_llm, isolated_env):
    one_error_line(thrift("forget", "--id", "abc", "--", *fake_llm.command()), 2, "--id")
    one_error_line(thrift("forget", QUESTION, "--"), 2, "no command after --")
    assert not isolated_env.exists()


@pytest.mark.parametrize(
    "args",
    [[QUESTION, "--"], ["--similar", QUESTION, "--"], ["--id", "abc"], ["-n", "docs", "--all", "--yes"]],
)
def test_no_cache_is_nothing_to_forget_and_creates_nothing(thrift, fake_llm, isolated_env, args):
    ran = thrift("forget", *args, *(fake_llm.command() if args[-1] == "--" else []))
    one_error_line(ran, 3)
    assert not isolated_env.exists()


def _heavy_modules_after(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    code = (
        "import sys; from thrift_cli.cli import main; rc = main(sys.argv[1:]); "
        f"sys.stderr.write(repr([m for m in {HEAVY!r} if m in sys.modules]) + '\\n'); sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, env={**os.environ, **(env or {})}
    )
    stderr = proc.stderr.decode()
    return proc.returncode, eval(stderr.strip().splitlines()[-1]), stderr


def test_forget_loads_no_model_unless_similar_needs_it(thrift, fake_llm):
    first = ask(thrift, fake_llm, QUESTION)
    assert ask(thrift, fake_llm, OTHER, "-n", "docs").code == 0
    assert ask(thrift, fake_llm, PARAPHRASE, "-n", "docs").code == 0
    command = ["--", *fake_llm.command()]
    assert _heavy_modules_after("forget", QUESTION, *command)[:2] == (0, [])
    assert ask(thrift, fake_llm, QUESTION).code == 0
    entry_id = ask(thrift, fake_llm, QUESTION).report["entry_id"]
    assert entry_id != first.report["entry_id"]
    assert _heavy_modules_after("forget", "--id", entry_id)[:2] == (0, [])
    # --similar stops at the exact tier when the question itself is cached...
    assert _heavy_modules_after("forget", "--similar", "-n", "docs", OTHER)[:2] == (0, [])
    # ...and only a paraphrase needs the model.
    code, heavy, stderr = _heavy_modules_after(
        "forget", "--similar", "-n", "docs", "How to learn coding fast?"
    )
    assert code == 0 and "numpy" in heavy, stderr
    assert _heavy_modules_after("forget", "-n", "docs", "--all", "--yes")[:2] == (3, [])


@pytest.fixture
def read_only_home(thrift, fake_llm, isolated_env):
    assert ask(thrift, fake_llm, QUESTION).code == 0
    before = snapshot(isolated_env)
    os.chmod(isolated_env / "cache.db", 0o400)
    os.chmod(isolated_env, 0o500)
    yield isolated_env
    os.chmod(isolated_env, 0o700)
    os.chmod(isolated_env / "cache.db", 0o600)
    assert snapshot(isolated_env) == before  # nothing written, nothing created


@pytest.mark.parametrize(
    "args", [[QUESTION, "--"], ["--similar", QUESTION, "--"], ["--id", "abc"], ["-n", "x", "--all", "-y"]]
)
def test_a_read_only_cache_is_one_error_and_nothing_deleted(read_only_home, fake_llm, args):
    ran = as_user("forget", *args, *(fake_llm.command() if args[-1] == "--" else []))
    line = one_error_line(ran, 1, "read-only", "nothing forgotten")
    assert line == f"thrift: the cache {read_only_home / 'cache.db'} is read-only: nothing forgotten"


# -- with Redis ------------------------------------------------------------------------------


def redis_env(redis_server, home: Path, tenant: str) -> dict[str, str]:
    return {"REDIS_URL": redis_server.url, "THRIFT_TENANT": tenant, "THRIFT_HOME": str(home)}


def test_forget_deletes_from_redis_too_and_no_machine_gets_it_again(thrift, fake_llm, redis_server, tmp_path):
    tenant = f"forget-{uuid.uuid4().hex[:8]}"
    env_a = redis_env(redis_server, tmp_path / "a", tenant)
    env_b = redis_env(redis_server, tmp_path / "b", tenant)
    first = ask(thrift, fake_llm, QUESTION, env=env_a)
    namespace = first.report["namespace"]
    key = RedisTier(redis_server.url, tenant=tenant).key(keys.exact_key(namespace, QUESTION))
    client = redis_server.client()
    assert client.exists(key) == 1
    assert ask(thrift, fake_llm, QUESTION, env=env_b).report["source"] == "redis"  # B is served by A's

    ran = forget(thrift, fake_llm, QUESTION, env=env_a)
    assert ran.code == 0, ran.stderr
    assert lines(ran) == [f"forgot {QUESTION!r} [namespace {namespace}] from redis, local"]
    assert client.exists(key) == 0
    on_b = ask(thrift, fake_llm, QUESTION, env=env_b)
    assert on_b.report["tier"] == "miss" and len(fake_llm.calls) == 2


def test_similar_deletes_the_served_entry_from_redis(thrift, fake_llm, redis_server, tmp_path):
    tenant = f"forget-{uuid.uuid4().hex[:8]}"
    env = redis_env(redis_server, tmp_path / "a", tenant)
    first = ask(thrift, fake_llm, QUESTION, env=env)
    key = RedisTier(redis_server.url, tenant=tenant).key(keys.exact_key(first.report["namespace"], QUESTION))
    assert ask(thrift, fake_llm, PARAPHRASE, env=env).report["tier"] == "semantic"
    ran = forget(thrift, fake_llm, "--similar", "--json", PARAPHRASE, env=env)
    report = json.loads(ran.stdout)
    assert ran.code == 0 and report["matched"]["question"] == QUESTION
    assert report["deleted"][0]["tiers"] == ["redis", "local"] and report["tiers"] == {"redis": 1, "local": 1}
    assert redis_server.client().exists(key) == 0
    on_b = ask(thrift, fake_llm, QUESTION, env={**env, "THRIFT_HOME": str(tmp_path / "b")})
    assert on_b.report["tier"] == "miss"


def test_a_machine_with_no_cache_file_forgets_from_redis_and_creates_none(
    thrift, fake_llm, redis_server, tmp_path
):
    tenant = f"forget-{uuid.uuid4().hex[:8]}"
    first = ask(thrift, fake_llm, QUESTION, env=redis_env(redis_server, tmp_path / "a", tenant))
    key = RedisTier(redis_server.url, tenant=tenant).key(keys.exact_key(first.report["namespace"], QUESTION))
    fresh = tmp_path / "fresh"
    ran = forget(thrift, fake_llm, "--similar", QUESTION, env=redis_env(redis_server, fresh, tenant))
    assert ran.code == 0, ran.stderr
    assert lines(ran)[1].endswith("from redis") and redis_server.client().exists(key) == 0
    assert not fresh.exists()


def test_id_served_from_redis_is_found_there(thrift, fake_llm, redis_server, tmp_path):
    """B was served A's entry from Redis, so B's own file lacks it: --id finds it in Redis.
    A's local copy stays, and A's next hit writes it back to Redis: a delete does not
    travel between machines' local files (tombstones, issue 10)."""
    tenant = f"forget-{uuid.uuid4().hex[:8]}"
    env_a = redis_env(redis_server, tmp_path / "a", tenant)
    env_b = redis_env(redis_server, tmp_path / "b", tenant)
    first = ask(thrift, fake_llm, QUESTION, env=env_a)
    served = ask(thrift, fake_llm, QUESTION, env=env_b)
    assert served.report["source"] == "redis" and served.report["entry_id"] == first.report["entry_id"]
    key = RedisTier(redis_server.url, tenant=tenant).key(keys.exact_key(first.report["namespace"], QUESTION))

    ran = thrift("forget", "--id", served.report["entry_id"], env=env_b)
    assert ran.code == 0, ran.stderr
    assert lines(ran) == [f"forgot {QUESTION!r} [namespace {first.report['namespace']}] from redis"]
    client = redis_server.client()
    assert client.exists(key) == 0
    back = ask(thrift, fake_llm, QUESTION, env=env_a)
    assert (back.report["tier"], back.report["source"]) == ("exact", "local")
    assert client.exists(key) == 1  # written back by A


def test_all_removes_this_tenants_redis_keys_only(thrift, fake_llm, redis_server, tmp_path):
    mine, theirs = f"forget-{uuid.uuid4().hex[:8]}", f"forget-{uuid.uuid4().hex[:8]}"
    env_a = redis_env(redis_server, tmp_path / "a", mine)
    env_b = redis_env(redis_server, tmp_path / "b", mine)  # same tenant, another machine
    env_t = redis_env(redis_server, tmp_path / "t", theirs)
    llm = ["--", *fake_llm.command()]
    assert thrift("ask", "-n", "docs", QUESTION, *llm, env=env_a).code == 0
    assert thrift("ask", "-n", "docs", OTHER, *llm, env=env_b).code == 0  # in Redis, not on A
    assert thrift("ask", "-n", "other", OTHER, *llm, env=env_a).code == 0
    assert thrift("ask", "-n", "docs", QUESTION, *llm, env=env_t).code == 0
    key = lambda tenant, ns, q: RedisTier(redis_server.url, tenant=tenant).key(keys.exact_key(ns, q))  # noqa: E731
    client = redis_server.client()

    ran = thrift("forget", "-n", "docs", "--all", "--yes", "--json", env=env_a)
    assert ran.code == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["tiers"] == {"redis": 2, "local": 1}
    tiers = {d["question"]: d["tiers"] for d in report["deleted"]}
    assert tiers == {QUESTION: ["redis", "local"], OTHER: ["redis"]}
    assert client.exists(key(mine, "docs", QUESTION), key(mine, "docs", OTHER)) == 0
    assert client.exists(key(mine, "other", OTHER)) == 1
    assert client.exists(key(theirs, "docs", QUESTION)) == 1  # another tenant's
    assert thrift("ask", "--lookup-only", "-n", "docs", QUESTION, env=env_t).code == 0


def test_redis_down_deletes_locally_and_says_the_forget_is_incomplete(thrift, fake_llm, tmp_path):
    env = {"REDIS_URL": f"redis://127.0.0.1:{closed_port()}", "THRIFT_TENANT": "down"}
    assert ask(thrift, fake_llm, QUESTION, env=env).code == 0
    ran = forget(thrift, fake_llm, QUESTION, env=env)
    assert ran.code == 1
    assert lines(ran) == [f"forgot {QUESTION!r} [namespace {ask_namespace(fake_llm)}] from local"]
    errors = [line for line in ran.stderr.splitlines() if line.startswith("thrift:")]
    assert len(errors) == 2 and "warning: Redis at" in errors[0]
    assert errors[1] == (
        "thrift: redis could not be reached: what it holds is not forgotten (and is still served); "
        "run this again when it answers"
    )
    assert ask(thrift, fake_llm, QUESTION).report["tier"] == "miss"  # gone locally


def ask_namespace(fake_llm) -> str:
    return keys.command_namespace(fake_llm.command())


def test_a_read_only_cache_leaves_redis_alone(read_only_home, fake_llm, redis_server, monkeypatch):
    """Redis is asked before the local file: a forget that deleted the shared copy and then
    failed on the local one would be undone by the next ask, so nothing is deleted."""
    tenant = f"forget-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("THRIFT_TENANT", tenant)
    tier = RedisTier(redis_server.url, tenant=tenant)
    namespace = ask_namespace(fake_llm)
    entry = CacheEntry(namespace, QUESTION, keys.exact_key(namespace, QUESTION), "an answer")
    tier.store(entry)
    ran = as_user("forget", QUESTION, "--", *fake_llm.command())
    one_error_line(ran, 1, "read-only")
    assert redis_server.client().exists(tier.key(entry.question_hash)) == 1


def test_help_names_every_way_and_exit_code(thrift):
    short, long = thrift("forget", "-h"), thrift("forget", "--help")
    assert short.code == long.code == 0 and short.stdout == long.stdout
    text = " ".join(long.stdout.decode().split())  # rich wraps lines
    assert "Usage: thrift forget" in text
    for words in ("--similar", "--id", "--all", "--yes", "0 forgotten", "2 bad usage", "3 nothing to forget"):
        assert words in text
