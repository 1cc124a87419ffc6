#!/usr/bin/env python3
"""Plays the README's quick start as a newcomer would, and fails when the README and the
service disagree.

1. Reads the run command from the README's "run the service" row and runs it exactly as
   written, from the repository's root (a fresh checkout: the examples' ids start at 1),
   with none of the caller's DATABASE_URL, PORT or IDENTITY_* settings.
2. Waits for GET /healthz.
3. Replays every `$ curl …` example of the README's ```console blocks, in order, through
   bash, and compares what it prints with the lines the README shows under it, byte for
   byte. The README stays the one source of its examples.

Usage: scripts/readme-quickstart.py   (from anywhere; exits 1 naming the first example that
disagrees, 2 when the quick start cannot run at all)
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
HEALTH = "http://127.0.0.1:8080/healthz"
# A release build from nothing takes minutes on a small machine.
START_TIMEOUT_SECS = 30 * 60


def fail(message, code=1):
    print(f"readme-quickstart: {message}", file=sys.stderr)
    sys.exit(code)


def run_command(text):
    """The command in the README's "run the service" row."""
    match = re.search(r"^\|\s*run the service\s*\|\s*`([^`]+)`\s*\|", text, re.MULTILINE)
    if not match:
        fail("README.md has no '| run the service | `…` |' row", 2)
    return match.group(1)


def examples(text):
    """(line number, command, expected output) for each `$ curl` in a ```console block."""
    found = []
    lines = text.splitlines()
    in_console = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("```"):
            in_console = line.strip() == "```console" and not in_console
            i += 1
            continue
        if in_console and line.startswith("$ curl"):
            start = i + 1
            command = [line[2:]]
            while command[-1].endswith("\\"):
                i += 1
                command.append(lines[i])
            output = []
            while i + 1 < len(lines) and not lines[i + 1].startswith("$ ") and not lines[
                i + 1
            ].strip().startswith("```"):
                i += 1
                output.append(lines[i])
            found.append((start, "\n".join(command), "\n".join(output)))
        i += 1
    return found


def wait_healthy(server, log_path):
    started = time.monotonic()
    deadline = started + START_TIMEOUT_SECS
    next_note = started + 60
    while time.monotonic() < deadline:
        if time.monotonic() >= next_note:
            print(f"  still building or starting ({next_note - started:.0f} s)", flush=True)
            next_note += 60
        if server.poll() is not None:
            print(log_path.read_text(encoding="utf-8")[-4000:], flush=True)
            fail(f"the run command exited with {server.returncode} before serving", 2)
        try:
            with urllib.request.urlopen(HEALTH, timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    fail(f"nothing answered {HEALTH} within {START_TIMEOUT_SECS} s", 2)


def main():
    text = README.read_text(encoding="utf-8")
    command = run_command(text)
    cases = examples(text)
    if not cases:
        fail("README.md has no `$ curl` example in a ```console block", 2)
    if (ROOT / "data").exists():
        fail("./data exists: the quick start expects a fresh checkout (move ./data away)", 2)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "PORT", "APP_ENV") and not k.startswith("IDENTITY")
    }
    print(f"$ {command}", flush=True)
    log_path = Path(tempfile.mkdtemp()) / "quickstart.log"
    log = open(log_path, "w", encoding="utf-8")
    server = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    failures = 0
    try:
        wait_healthy(server, log_path)
        print(f"serving: {HEALTH} answered 200", flush=True)
        for line, example, expected in cases:
            done = subprocess.run(
                ["bash", "-c", example], cwd=ROOT, env=env, capture_output=True, text=True
            )
            actual = done.stdout.rstrip("\n")
            if done.returncode == 0 and actual == expected:
                print(f"ok: README.md:{line}", flush=True)
                continue
            failures += 1
            print(
                f"FAILED: README.md:{line}\n  command:  {example}\n"
                f"  README:   {expected}\n  service:  {actual}\n"
                f"  exit {done.returncode}{': ' + done.stderr.strip() if done.stderr else ''}",
                flush=True,
            )
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(server.pid, signal.SIGKILL)
        # The data the examples wrote, so that the next run starts fresh again.
        shutil.rmtree(ROOT / "data", ignore_errors=True)
    log.close()
    if failures:
        print(f"the service's output ({log_path}):", flush=True)
        print(log_path.read_text(encoding="utf-8")[-4000:], flush=True)
        fail(f"{failures} of {len(cases)} README examples disagree with the service")
    print(f"the README's {len(cases)} examples answer as written", flush=True)


if __name__ == "__main__":
    main()
