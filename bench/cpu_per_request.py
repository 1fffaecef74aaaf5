#!/usr/bin/env python3
"""Proxy CPU time per request under a fixed redis-benchmark load.

On a shared machine redis-benchmark's rps moves by +-0.05 of direct from run
to run; the CPU time the proxy process spends per request (utime + stime
from /proc, Linux only) moves far less. Starts a private redis-server, one
proxy per NAME=CMD (`-f CONFIG.json` is appended, as run_bench.py does),
then 3 interleaved rounds of `redis-benchmark -c 50 -t set,get` at -P 1
(100k) and -P 16 (800k) against each; prints the median µs per request and
the three rounds. From the repository root:

    python bench/cpu_per_request.py "proxy=python3 -m redis_proxy" "pipe=python3 bench/bytepipe.py"
"""
import json, os, socket, subprocess, sys, tempfile, time

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_port(port, t=15):
    end = time.time() + t
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return
        except OSError: time.sleep(0.05)
    raise SystemExit(f"port {port} not up")

def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

variants = {k: v for k, v in (a.split("=", 1) for a in sys.argv[1:])}
rport = free_port()
redis = subprocess.Popen(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
wait_port(rport)
procs = {}
try:
    for name, cmd in variants.items():
        port = free_port()
        cfg = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump({"uplink": {"addr": f"127.0.0.1:{rport}"}, "listen": {"addr": f"127.0.0.1:{port}"}}, cfg); cfg.close()
        procs[name] = (subprocess.Popen(["sh", "-c", f'exec {cmd} -f {cfg.name}'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port)
    for name, (p, port) in procs.items():
        wait_port(port)
    results = {name: {} for name in procs}
    for rnd in range(3):
        for pipe, n in ((1, 100000), (16, 800000)):
            for name, (p, port) in procs.items():
                before = cpu(p.pid)
                subprocess.run(["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(n), "-P", str(pipe), "-t", "set,get", "-q"], stdout=subprocess.DEVNULL, check=True)
                used = cpu(p.pid) - before
                results[name].setdefault(pipe, []).append(used / (2 * n) * 1e6)
    for name, r in results.items():
        print(name, "  ".join(f"-P {pipe}: {sorted(v)[1]:.2f} µs/req CPU {['%.2f' % x for x in v]}" for pipe, v in r.items()))
finally:
    for p, _ in procs.values(): p.terminate()
    redis.terminate()
