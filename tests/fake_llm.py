"""A stand-in LLM command that counts its calls.

    python fake_llm.py --calls FILE [--exit N] [--sleep S] [--empty] [--stderr MSG]
                       [--stdin] [--slow-chunks] [--model NAME] [--until FILE] [QUESTION]

It appends one line to FILE per call, so a test can assert "the second ask did not run
the command". `--until FILE` holds the answer back until FILE exists, so a test decides
when a call ends (no timing). Its answer names the question and carries bytes a careless cache would
mangle (non-ASCII, CRLF, no trailing newline trimmed).
"""

import argparse
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--calls", required=True)
parser.add_argument("--exit", type=int, default=0)
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--empty", action="store_true")
parser.add_argument("--stderr", default="")
parser.add_argument("--stdin", action="store_true")
parser.add_argument("--slow-chunks", action="store_true")
parser.add_argument("--model", default="fake-1")
parser.add_argument("--until", default="")
parser.add_argument("question", nargs="?", default="")
args = parser.parse_args()

question = sys.stdin.read() if args.stdin else args.question
fd = os.open(args.calls, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
os.write(fd, (question.replace("\n", "\\n") + "\n").encode())
os.close(fd)

if args.stderr:
    sys.stderr.write(args.stderr + "\n")
    sys.stderr.flush()
if args.sleep:
    time.sleep(args.sleep)
while args.until and not os.path.exists(args.until):
    time.sleep(0.02)
out = sys.stdout.buffer
if args.slow_chunks:
    out.write(b"first chunk\n")
    out.flush()
    time.sleep(1.5)
    out.write(b"second chunk\n")
elif not args.empty:
    out.write(f"[{args.model}] Answer to \u00ab{question}\u00bb \u2014 caf\u00e9\r\nline two\n\n".encode())
out.flush()
sys.exit(args.exit)
