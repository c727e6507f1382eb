#!/usr/bin/env python3
"""Keystroke round trip through an interactive SSH shell: the time from writing one byte to
ssh's stdin until its echo comes back on stdout, as a person at a terminal feels it.

Usage: ssh_keystroke.py N ssh-argv...   (the argv opens a shell: `ssh -tt ... HOST`)
The shell is switched to raw mode running `cat`, so every byte echoes at once. Prints
"p50_us p99_us" of N round trips (after 50 warm-up ones).
"""
import os
import subprocess
import sys
import time


def read_until(fd, marker, limit=10.0):
    seen = b""
    deadline = time.monotonic() + limit
    while marker not in seen:
        if time.monotonic() > deadline:
            sys.exit(f"no {marker!r} from the shell; got {seen[-200:]!r}")
        seen += os.read(fd, 4096)


def main():
    n = int(sys.argv[1])
    p = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out = p.stdout.fileno()
    # Typed, so `SYNC` only appears once the shell ran it.
    p.stdin.write(b"stty raw -echo; printf 'S%sC' YN; exec cat\r")
    p.stdin.flush()
    read_until(out, b"SYNC")
    times = []
    for i in range(n + 50):
        t0 = time.perf_counter_ns()
        p.stdin.write(b"a")
        p.stdin.flush()
        got = os.read(out, 1)
        t1 = time.perf_counter_ns()
        if got != b"a":
            sys.exit(f"unexpected echo {got!r}")
        if i >= 50:
            times.append((t1 - t0) / 1000)
    p.kill()
    times.sort()
    print(f"{times[len(times) // 2]:.0f} {times[int(len(times) * 0.99)]:.0f}")


main()
