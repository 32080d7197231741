"""`thrift ask` as a user runs it: a real process, the real store, the real model."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from conftest import FAKE_LLM, thrift_executable


def answer(question: str, model: str = "fake-1") -> bytes:
    return f"[{model}] Answer to \u00ab{question}\u00bb \u2014 caf\u00e9\r\nline two\n\n".encode()


def test_second_ask_is_an_exact_hit_and_runs_nothing(thrift, fake_llm):
    first = thrift("ask", "What is semantic caching?", "--", *fake_llm.command())
    assert first.code == 0, first.stderr
    assert first.stdout == answer("What is semantic caching?")
    second = thrift("ask", "--json", "What is semantic caching?", "--", *fake_llm.command())
    assert second.code == 0
    assert second.stdout == first.stdout
    assert second.report["tier"] == "exact"
    assert fake_llm.calls == ["What is semantic caching?"]


def test_paraphrase_is_served_byte_for_byte_without_a_call(thrift, fake_llm):
    first = thrift("ask", "How do I learn to code quickly?", "--", *fake_llm.command())
    assert first.code == 0, first.stderr
    hit = thrift("ask", "--json", "How can I learn to code fast?", "--", *fake_llm.command())
    assert hit.code == 0, hit.stderr
    assert hit.stdout == answer("How do I learn to code quickly?")
    assert hit.report["tier"] == "semantic"
    assert hit.report["similarity"] >= 0.85
    assert hit.report["matched_question"] == "How do I learn to code quickly?"
    assert len(fake_llm.calls) == 1


def test_real_llm_cli_miss_then_paraphrase_hit(thrift, llm_cli):
    first = thrift("ask", "-v", "How do I learn to code quickly?", "--", *llm_cli)
    assert first.code == 0, first.stderr
    assert b'"prompt": "How do I learn to code quickly?"' in first.stdout
    assert "miss" in first.stderr and "stored" in first.stderr
    second = thrift("ask", "-v", "How can I learn to code fast?", "--", *llm_cli)
    assert second.code == 0
    assert second.stdout == first.stdout
    assert "semantic hit" in second.stderr


def test_same_question_under_another_command_line_is_a_miss(thrift, fake_llm):
    thrift("ask", "What is semantic caching?", "--", *fake_llm.command())
    other = thrift("ask", "--json", "What is semantic caching?", "--", *fake_llm.command("--model", "fake-2"))
    assert other.code == 0
    assert other.report["tier"] == "miss"
    assert other.stdout == answer("What is semantic caching?", "fake-2")
    assert len(fake_llm.calls) == 2


def test_explicit_namespace_shares_answers_across_commands(thrift, fake_llm):
    thrift("ask", "-n", "team", "What is semantic caching?", "--", *fake_llm.command())
    shared = thrift("ask", "-n", "team", "What is semantic caching?", "--", *fake_llm.command("--model", "x"))
    assert shared.stdout == answer("What is semantic caching?")
    assert len(fake_llm.calls) == 1


def test_question_from_stdin_and_dash(thrift, fake_llm):
    piped = thrift("ask", "--", *fake_llm.command(), input=b"What is a vector database?\n")
    assert piped.code == 0, piped.stderr
    assert piped.stdout == answer("What is a vector database?")
    dashed = thrift("ask", "--json", "-", "--", *fake_llm.command(), input=b"What is a vector database?")
    assert dashed.report["tier"] == "exact"
    assert len(fake_llm.calls) == 1


def test_placeholder_is_replaced_and_stdin_mode_pipes_the_question(thrift, fake_llm):
    cmd = fake_llm.command()
    placed = thrift("ask", "Explain {} please", "--", *cmd, "{}")
    assert placed.code == 0, placed.stderr
    assert fake_llm.calls[-1] == "Explain {} please"
    # `{}` at the end and an appended question are the same call: same namespace.
    again = thrift("ask", "--json", "Explain {} please", "--", *cmd)
    assert again.report["tier"] == "exact"
    piped = thrift("ask", "--json", "--stdin", "What is RAG?", "--", *fake_llm.command("--stdin"))
    assert piped.code == 0, piped.stderr
    assert piped.stdout == answer("What is RAG?")
    assert piped.report["namespace"].endswith("< {}")
    assert fake_llm.calls[-1] == "What is RAG?"


def test_failing_command_passes_its_code_and_stderr_and_stores_nothing(thrift, fake_llm):
    cmd = fake_llm.command("--exit", "7", "--stderr", "rate limited, try later")
    failed = thrift("ask", "--json", "What is semantic caching?", "--", *cmd)
    assert failed.code == 7
    assert "rate limited, try later" in failed.stderr
    assert failed.report["stored"] is False
    again = thrift("ask", "What is semantic caching?", "--", *cmd)
    assert again.code == 7
    assert len(fake_llm.calls) == 2  # nothing was stored, so it was called again


def test_empty_answer_is_not_stored(thrift, fake_llm):
    empty = thrift("ask", "--json", "Say nothing", "--", *fake_llm.command("--empty"))
    assert empty.code == 0 and empty.stdout == b""
    assert empty.report["not_stored_because"] == "empty answer"
    thrift("ask", "Say nothing", "--", *fake_llm.command("--empty"))
    assert len(fake_llm.calls) == 2


def test_timeout_kills_the_command_and_stores_nothing(thrift, fake_llm):
    started = time.monotonic()
    slow = thrift(
        "ask", "--json", "--timeout", "1", "Slow question", "--", *fake_llm.command("--sleep", "30")
    )
    assert slow.code == 124
    assert "thrift: the command timed out after 1 s; nothing stored" in slow.stderr
    assert time.monotonic() - started < 20
    assert slow.report["not_stored_because"] == "timed out"
    thrift("ask", "--timeout", "1", "Slow question", "--", *fake_llm.command("--sleep", "30"))
    assert len(fake_llm.calls) == 2


def test_no_store_calls_but_never_writes(thrift, fake_llm):
    one = thrift("ask", "--no-store", "What is semantic caching?", "--", *fake_llm.command())
    assert one.stdout == answer("What is semantic caching?")
    thrift("ask", "--no-store", "What is semantic caching?", "--", *fake_llm.command())
    assert len(fake_llm.calls) == 2


def test_lookup_only_never_calls_and_exits_3_on_a_miss(thrift, fake_llm):
    miss = thrift("ask", "--lookup-only", "What is semantic caching?", "--", *fake_llm.command())
    assert miss.code == 3 and miss.stdout == b""
    assert fake_llm.calls == []
    thrift("ask", "What is semantic caching?", "--", *fake_llm.command())
    hit = thrift("ask", "--lookup-only", "What is semantic caching?", "--", *fake_llm.command())
    assert hit.code == 0 and hit.stdout == answer("What is semantic caching?")
    by_name = thrift("ask", "--lookup-only", "-n", "nobody", "What is semantic caching?")
    assert by_name.code == 3


def test_refresh_calls_again_and_replaces_the_questions_own_answer(thrift, fake_llm):
    thrift("ask", "How do I learn to code quickly?", "--", *fake_llm.command())
    fresh = thrift("ask", "--json", "--refresh", "How can I learn to code fast?", "--", *fake_llm.command())
    assert fresh.code == 0 and fresh.report["stored"] is True
    assert fresh.stdout == answer("How can I learn to code fast?")
    # Both questions now have their own answer: the paraphrase's entry was not deleted.
    old = thrift("ask", "--json", "How do I learn to code quickly?", "--", *fake_llm.command())
    assert old.report["tier"] == "exact" and old.stdout == answer("How do I learn to code quickly?")
    new = thrift("ask", "--json", "How can I learn to code fast?", "--", *fake_llm.command("--model", "x"))
    assert new.report["tier"] == "miss"  # another command line: another namespace
    again = thrift("ask", "--json", "--refresh", "How can I learn to code fast?", "--", *fake_llm.command())
    assert again.report["stored"] is True
    assert [e for e in fake_llm.calls].count("How can I learn to code fast?") == 3


def test_ttl_expires_an_entry(thrift, fake_llm):
    thrift("ask", "--ttl", "1", "What time is it?", "--", *fake_llm.command())
    assert thrift("ask", "--json", "What time is it?", "--", *fake_llm.command()).report["tier"] == "exact"
    time.sleep(1.2)
    late = thrift("ask", "--json", "What time is it?", "--", *fake_llm.command())
    assert late.report["tier"] == "miss"
    assert len(fake_llm.calls) == 2


def test_min_similarity_one_serves_only_exact_hits(thrift, fake_llm):
    thrift("ask", "How do I learn to code quickly?", "--", *fake_llm.command())
    strict = thrift("ask", "--json", "-s", "1", "How can I learn to code fast?", "--", *fake_llm.command())
    assert strict.report["tier"] == "miss"
    assert 0.85 < strict.report["similarity"] < 1.0
    assert strict.report["matched_question"] == "How do I learn to code quickly?"


def test_verbose_reports_on_stderr_only(thrift, fake_llm):
    thrift("ask", "What is semantic caching?", "--", *fake_llm.command())
    hit = thrift("ask", "-v", "What is semantic caching?", "--", *fake_llm.command())
    assert hit.stdout == answer("What is semantic caching?")
    assert hit.stderr.startswith("thrift: exact hit, similarity 1.000")


def test_miss_streams_output_before_the_command_finishes(fake_llm, isolated_env):
    proc = subprocess.Popen(
        [*thrift_executable(), "ask", "Stream please", "--", *fake_llm.command("--slow-chunks")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first == b"first chunk\n"
    assert proc.poll() is None  # the command is still sleeping: we saw it live
    rest, _ = proc.communicate(timeout=60)
    assert rest == b"second chunk\n" and proc.returncode == 0


def test_closed_stdout_still_stores_the_answer(thrift, fake_llm, isolated_env):
    # `thrift ask ... | head -c 5`: the reader leaves early, the answer is still cached.
    shell = (
        f"{' '.join(thrift_executable())} ask 'Pipe me' -- {sys.executable} {FAKE_LLM} "
        f"--calls {fake_llm.calls_file} | head -c 5"
    )
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, env=os.environ, timeout=60)
    assert proc.stdout == answer("Pipe me")[:5]
    assert "Traceback" not in proc.stderr.decode()
    again = thrift("ask", "--json", "Pipe me", "--", *fake_llm.command())
    assert again.report["tier"] == "exact" and again.stdout == answer("Pipe me")


def test_non_utf8_answer_is_passed_through_but_not_stored(thrift, tmp_path):
    script = tmp_path / "binary.py"
    script.write_text("import sys; sys.stdout.buffer.write(b'\\xff\\xfe raw')")
    ran = thrift("ask", "--json", "Give bytes", "--", sys.executable, str(script))
    assert ran.code == 0 and ran.stdout == b"\xff\xfe raw"
    assert ran.report["not_stored_because"] == "answer is not UTF-8 text"


def test_the_command_gets_the_users_environment(thrift, tmp_path):
    # thrift runs its own math single-threaded; the LLM command must not inherit that.
    script = tmp_path / "env.py"
    script.write_text(
        "import os; print(os.environ.get('OMP_NUM_THREADS', 'unset'), os.environ.get('MY_VAR'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    proc = subprocess.run(
        [*thrift_executable(), "ask", "Which env?", "--", sys.executable, str(script)],
        capture_output=True,
        env={**env, "MY_VAR": "kept"},
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert proc.stdout == b"unset kept\n", proc.stderr


def test_verbose_and_json_show_a_veto(thrift, fake_llm):
    thrift("ask", "Is Java faster than Python?", "--", *fake_llm.command())
    swapped = thrift("ask", "-v", "--json", "Is Python faster than Java?", "--", *fake_llm.command())
    assert swapped.code == 0
    assert swapped.stdout == answer("Is Python faster than Java?")  # a miss: the command ran
    assert swapped.report["tier"] == "miss"
    (vetoed,) = swapped.report["vetoed"]
    assert vetoed["guard"] == "word-order" and vetoed["question"] == "Is Java faster than Python?"
    assert vetoed["similarity"] >= 0.85
    assert "vetoed by the word-order guard: 'Is Java faster than Python?'" in swapped.stderr
    assert len(fake_llm.calls) == 2
