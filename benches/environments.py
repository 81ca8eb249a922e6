#!/usr/bin/env python3
"""Benchmarks for environments (not a test): run with `python3 benches/environments.py`.

1. `envd up --detach` on examples/checkout, from the command to "ready", minus the service
   under test's own start-to-healthy time (reported by envd as the `orders` part's
   elapsed_ms), median of N runs, with the daemon already running.
2. The daemon's RSS while it serves an environment of 10 contract stubs of 1,000
   interactions each (the service under test is a separate process and not counted).

Uses target/release/envd (build it first: cargo build --release).
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVD = os.path.join(ROOT, "target", "release", "envd")
RUNS = int(os.environ.get("RUNS", "15"))


def envd(home, *args, check=True):
    result = subprocess.run([ENVD, *args], env={**os.environ, "ENVD_HOME": home},
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"envd {' '.join(args)} failed: {result.stderr}")
    return result


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def stop_daemon(home):
    try:
        pid = int(open(os.path.join(home, "daemon.pid")).read())
        os.kill(pid, 15)
    except (OSError, ValueError):
        pass


def bench_up():
    home = tempfile.mkdtemp()
    manifest = os.path.join(ROOT, "examples/checkout/envd.toml")
    envd(home, "ps")  # the daemon is started once, as on a laptop
    overheads, totals = [], []
    try:
        for _ in range(RUNS):
            start = time.perf_counter()
            out = envd(home, "up", "--detach", "--json", "-f", manifest)
            total = (time.perf_counter() - start) * 1000
            service = [int(m) for m in re.findall(r"orders ready at \S+ \((\d+) ms\)", out.stderr)]
            env = json.loads(out.stdout)
            envd(home, "down", env["id"])
            totals.append(total)
            overheads.append(total - service[0])
    finally:
        stop_daemon(home)
    return statistics.median(totals), statistics.median(overheads)


def bench_rss():
    home = tempfile.mkdtemp()
    work = tempfile.mkdtemp()
    deps = []
    for n in range(10):
        interactions = [{
            "type": "Synchronous/HTTP",
            "description": f"item {i} of dep {n}",
            "request": {"method": "GET", "path": f"/items/{i}"},
            "response": {"status": 200, "headers": {"Content-Type": "application/json"},
                         "body": {"id": i, "name": f"item {i}", "price": i * 1.5, "tags": ["a", "b"]}},
        } for i in range(1000)]
        with open(os.path.join(work, f"dep{n}.json"), "w") as f:
            json.dump({"consumer": {"name": "bench"}, "provider": {"name": f"dep{n}"},
                       "interactions": interactions,
                       "metadata": {"pactSpecification": {"version": "4.0"}}}, f)
        deps.append(f'[deps.dep{n}]\nmode = "contract"\ncontracts = ["dep{n}.json"]\nurl_env = "DEP{n}_URL"\n')
    with open(os.path.join(work, "envd.toml"), "w") as f:
        f.write('name = "rss"\n[service]\ncommand = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]\n')
        f.write("\n".join(deps))
    try:
        out = envd(home, "up", "--detach", "--json", "-f", os.path.join(work, "envd.toml"))
        env = json.loads(out.stdout)
        # Touch every stub once, so lazily prepared responses are counted.
        import urllib.request
        for n in range(10):
            url = env["vars"][f"DEP{n}_URL"]
            for i in range(0, 1000, 50):
                urllib.request.urlopen(f"{url}/items/{i}").read()
        pid = int(open(os.path.join(home, "daemon.pid")).read())
        rss = rss_mib(pid)
        envd(home, "down", env["id"])
    finally:
        stop_daemon(home)
    return rss


if __name__ == "__main__":
    total, overhead = bench_up()
    print(f"envd up, examples/checkout: median {total:.0f} ms to ready; "
          f"{overhead:.0f} ms without the service's own start (bar: <= 200 ms), {RUNS} runs")
    rss = bench_rss()
    print(f"daemon RSS with 10 contract stubs x 1,000 interactions: {rss:.1f} MiB (bar: <= 40 MiB)")
