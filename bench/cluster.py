#!/usr/bin/env python3
"""Cluster benchmarks on this machine's PostgreSQL (a scratch database, dropped after).

  python3 bench/cluster.py [--revocations 100] [--dispatches 30] [--wrk-secs 10]

(1) Revocation propagation: a token is revoked on node A while node B, which has it
    cached, is polled every 2 ms; the time from A's answer to B's first 401, over N
    revocations (p50/p99). Measured with the change feed (LISTEN/NOTIFY) and without it
    (--no-listen: the 500 ms poll alone), in the same run.
(2) Job dispatch: an upload on A until an idle `hark worker` has claimed it (the
    recording leaves PENDING), with LISTEN/NOTIFY and with the poll alone.
(3) Authenticated GET /api/recordings throughput (wrk) against one API node, then against
    two nodes at once (one wrk each), summed.

Needs target/release/hark (built here), wrk, and PostgreSQL at 127.0.0.1:5432. Rate limits
are lifted on the nodes (each revocation ends in one 401 per probe, which the per-IP
lock-out would otherwise count).
"""

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARK = os.path.join(ROOT, "target", "release", "hark")
ADMIN_URL = os.environ.get("HARK_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
CLIP = os.path.join(ROOT, "..", "shared", "audio", "support_02.wav")
MODEL = os.path.join(ROOT, "models", "whisper-tiny.en")


def psql(sql):
    subprocess.run(["psql", ADMIN_URL, "-qAt", "-c", sql], check=True, stdout=subprocess.DEVNULL)


def request(method, url, token, body=None, content_type="application/json"):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Node:
    def __init__(self, command, data_dir, env, extra=()):
        self.log = open(os.path.join(data_dir, f"{command}-{secrets.token_hex(3)}.log"), "w+")
        args = [HARK, "--data-dir", data_dir, command, "--listen", "127.0.0.1:0",
                "--model-dir", MODEL, "--beam-size", "1", "--token-rate-per-minute",
                "4000000000", "--failed-auth-per-minute", "0", *extra]
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            self.log.seek(0)
            found = re.search(r"listening on (http://[0-9.:]+)", self.log.read())
            if found:
                self.base = found.group(1)
                return
            time.sleep(0.05)
        raise SystemExit(f"{command} did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(label, seconds):
    ms = [s * 1000 for s in seconds]
    print(f"{label:<34} n={len(ms):<4} p50 {percentile(ms, 50):7.1f} ms   "
          f"p99 {percentile(ms, 99):7.1f} ms   max {max(ms):7.1f} ms", flush=True)
    return percentile(ms, 50), percentile(ms, 99)


def revocations(a, b, token, n):
    took = []
    for _ in range(n):
        status, body = request("POST", f"{a.base}/api/tokens", token, {"name": "probe"})
        assert status == 201, body
        created = json.loads(body)
        assert request("GET", f"{b.base}/api/tokens/self", created["token"])[0] == 200
        assert request("DELETE", f"{a.base}/api/tokens/{created['id']}", token)[0] == 200
        revoked = time.perf_counter()
        while request("GET", f"{b.base}/api/tokens/self", created["token"])[0] != 401:
            time.sleep(0.002)
        took.append(time.perf_counter() - revoked)
    return took


def multipart(path):
    boundary = secrets.token_hex(8)
    with open(path, "rb") as f:
        audio = f.read()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + audio + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def dispatches(a, token, clip, n):
    body, content_type = multipart(clip)
    took = []
    for _ in range(n):
        status, created = request("POST", f"{a.base}/api/recordings", token, body, content_type)
        assert status == 201, created
        acknowledged = time.perf_counter()
        rid = json.loads(created)["id"]
        claimed = None
        while True:
            rec = json.loads(request("GET", f"{a.base}/api/recordings/{rid}", token)[1])
            if claimed is None and rec["status"] != "PENDING":
                claimed = time.perf_counter() - acknowledged
            if rec["status"] in ("COMPLETED", "FAILED"):
                break
            time.sleep(0.002 if claimed is None else 0.05)
        took.append(claimed)
    return took


def throughput(bases, token, secs):
    procs = [subprocess.Popen(["wrk", "-t1", "-c16", f"-d{secs}s", "-H", f"Authorization: Bearer {token}",
                               f"{base}/api/recordings"], stdout=subprocess.PIPE, text=True)
             for base in bases]
    total = 0.0
    for p in procs:
        out = p.communicate()[0]
        total += float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
        assert "Non-2xx" not in out, out
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--revocations", type=int, default=100)
    parser.add_argument("--dispatches", type=int, default=30)
    parser.add_argument("--wrk-secs", type=int, default=10)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "hark"], cwd=ROOT, check=True)
    name = f"hark_bench_{secrets.token_hex(4)}"
    psql(f"CREATE DATABASE {name}")
    work = tempfile.mkdtemp()
    nodes = []
    try:
        env = dict(os.environ, HARK_DATABASE_URL=ADMIN_URL.rsplit("/", 1)[0] + "/" + name,
                   HARK_LOG="warn,hark_server=info")
        subprocess.run([HARK, "--data-dir", work, "admin", "create-user", "--username", "bench",
                        "--role", "member"], env=env, check=True, stdout=subprocess.DEVNULL)
        token = subprocess.run([HARK, "--data-dir", work, "admin", "create-token", "--username",
                                "bench", "--name", "bench", "--expires", "never"], env=env,
                               check=True, capture_output=True, text=True).stdout.strip()
        clip = os.path.join(work, "short.wav")
        with open(CLIP, "rb") as f:
            wav = bytearray(f.read())
        data = wav[44:44 + 16000 * 2 * 3 // 2]
        header = wav[:44]
        header[4:8] = (36 + len(data)).to_bytes(4, "little")
        header[40:44] = len(data).to_bytes(4, "little")
        with open(clip, "wb") as f:
            f.write(bytes(header) + bytes(data))

        results = {}
        for mode, extra in (("LISTEN/NOTIFY", []), ("poll only (--no-listen)", ["--no-listen"])):
            a = Node("serve", work, env, ["--workers", "0", *extra])
            b = Node("serve", work, env, ["--workers", "0", *extra])
            w = Node("worker", work, env, ["--workers", "1", *extra])
            nodes[:] = [a, b, w]
            results[f"revocation, {mode}"] = summary(
                f"revocation A→B, {mode}", revocations(a, b, token, args.revocations))
            dispatches(a, token, clip, 2)  # warm the model
            results[f"dispatch, {mode}"] = summary(
                f"dispatch enqueue→claim, {mode}", dispatches(a, token, clip, args.dispatches))
            for node in nodes:
                node.stop()
            nodes.clear()

        if shutil.which("wrk"):
            a = Node("serve", work, env, ["--workers", "0"])
            b = Node("serve", work, env, ["--workers", "0"])
            nodes[:] = [a, b]
            throughput([a.base], token, 2)  # warm up
            one = throughput([a.base], token, args.wrk_secs)
            two = throughput([a.base, b.base], token, args.wrk_secs)
            print(f"GET /api/recordings: 1 node {one:,.0f} req/s, 2 nodes {two:,.0f} req/s, "
                  f"ratio {two / one:.2f}", flush=True)
        else:
            print("wrk not found: throughput skipped (apt-get install wrk)")
    finally:
        for node in nodes:
            node.stop()
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
