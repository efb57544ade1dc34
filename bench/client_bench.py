#!/usr/bin/env python3
"""blender-jobs as a user sees it: an independent, standard-library-only JSON-RPC client (not
the project's own clients, not LSP4J) drives the server started the way the README says (the
distribution's bin/blender-jobs-server launcher, or any command given with --server), over its
real stdin/stdout, with real Blender, and measures:

  latency    trivial jobs one at a time: addJob sent -> addJob answered, -> ACTIVE, -> COMPLETED
  burst      N trivial jobs sent at once: jobs/s from the first send to the last COMPLETED
  data       a job leaving ~10 MB of python_data: COMPLETED received -> value parsed here
  rss        the server's resident memory (idle, and after every job of this run)

Times are taken on arrival by a reader thread (time.perf_counter), so they include what the
client library itself costs: here, a frame read and one json.loads per message.

  python3 bench/client_bench.py [--server CMD] [--workers 2] [--jobs 300] [--burst 1000]
                                [--data-mb 10] [--markdown FILE] [--json FILE]
"""

import argparse
import glob
import io
import json
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def default_server():
    launchers = sorted(glob.glob(os.path.join(ROOT, "server", "target", "blender-jobs-server-*", "bin",
                                              "blender-jobs-server")))
    if not launchers:
        sys.exit("no server distribution under server/target: run `mvn -q package -DskipTests` first, "
                 "or give --server")
    return [launchers[-1]]


class Server:
    """The server as a child process and a minimal JSON-RPC 2.0 client over its stdio."""

    def __init__(self, command, env=None):
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(HERE, "out", "client_bench.server.log"), "wb"),
                                     env=env, bufsize=0)
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.next_id = 1
        self.responses = {}      # id -> (arrival time, message)
        self.states = {}         # jobId -> {state: arrival time}
        self.done = {}           # jobId -> arrival time of its resting state
        self.write_lock = threading.Lock()
        threading.Thread(target=self._read, name="reader", daemon=True).start()

    def _read(self):
        stream = io.BufferedReader(self.proc.stdout, 1 << 16)
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    return
                if line == b"\r\n":
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = bytearray(length)
            view = memoryview(body)
            got = 0
            while got < length:
                n = stream.readinto(view[got:])
                if not n:
                    return
                got += n
            now = time.perf_counter()
            if length > 50 * 1024 * 1024:
                # A huge answer (the "big" case): its size is what matters, not its parse.
                head = bytes(body[:200]).decode("utf-8", "replace")
                rid = int(head.split('"id":', 1)[1].split(",", 1)[0])
                with self.cond:
                    self.responses[rid] = (now, {"id": rid, "result": {"bytes": length}})
                    self.cond.notify_all()
                continue
            message = json.loads(body)
            with self.cond:
                if "id" in message and "method" not in message:
                    self.responses[message["id"]] = (now, message)
                elif message.get("method") == "job/stateChanged":
                    p = message["params"]
                    self.states.setdefault(p["jobId"], {})[p["state"]] = now
                    if p["state"] in ("COMPLETED", "FAILED", "CANCELED", "INTERRUPTED"):
                        self.done[p["jobId"]] = now
                self.cond.notify_all()

    def send(self, method, params, request=True):
        with self.write_lock:
            msg = {"jsonrpc": "2.0", "method": method, "params": params}
            if request:
                msg["id"] = self.next_id
                self.next_id += 1
            body = json.dumps(msg).encode("utf-8")
            sent = time.perf_counter()
            self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            return msg.get("id"), sent

    def wait_response(self, rid, timeout=120):
        deadline = time.time() + timeout
        with self.cond:
            while rid not in self.responses:
                if not self.cond.wait(max(0.0, deadline - time.time())):
                    raise TimeoutError("no answer to request %s" % rid)
            arrived, message = self.responses.pop(rid)
        if "error" in message:
            raise RuntimeError(message["error"])
        return arrived, message["result"]

    def call(self, method, params=None, timeout=120):
        rid, _ = self.send(method, params or {})
        return self.wait_response(rid, timeout)[1]

    def wait_done(self, job_ids, timeout=300):
        deadline = time.time() + timeout
        with self.cond:
            while not all(j in self.done for j in job_ids):
                if not self.cond.wait(max(0.0, deadline - time.time())):
                    missing = [j for j in job_ids if j not in self.done]
                    raise TimeoutError("%d jobs not done, e.g. %s" % (len(missing), missing[:3]))

    def rss_mb(self):
        # The launcher execs java, so the child's pid is the JVM's.
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            return None

    def close(self):
        try:
            self.call("shutdown", None, timeout=30)
            self.send("exit", None, request=False)
            self.proc.wait(30)
        except Exception:
            self.proc.kill()


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


TRIVIAL = "python_data = {'ok': True}"


def latency(server, n, gap=0.0):
    answered, active, completed = [], [], []
    server.last_latency_jobs = []
    for _ in range(n):
        if gap:
            time.sleep(gap)  # the worker's clean-up after the job before is over
        rid, sent = server.send("addJob", {"scriptText": TRIVIAL})
        arrived, result = server.wait_response(rid)
        job = result["jobId"]
        server.last_latency_jobs.append(job)
        server.wait_done([job])
        states = server.states[job]
        answered.append((arrived - sent) * 1000)
        active.append((states.get("ACTIVE", arrived) - sent) * 1000)
        completed.append((states["COMPLETED"] - sent) * 1000)
    return {"answered": answered, "active": active, "completed": completed}


def burst(server, n):
    first = None
    ids = []
    for _ in range(n):
        rid, sent = server.send("addJob", {"scriptText": TRIVIAL})
        first = first or sent
        ids.append(rid)
    jobs = [server.wait_response(rid)[1]["jobId"] for rid in ids]
    server.wait_done(jobs, timeout=600)
    last = max(server.done[j] for j in jobs)
    failed = [j for j in jobs if "COMPLETED" not in server.states[j]]
    return {"jobs": n, "seconds": last - first, "jobsPerSecond": n / (last - first), "failed": len(failed)}


def data(server, mb):
    script = ("python_data = {'values': [i * 0.5 for i in range(%d)]}" % int(mb * 1024 * 1024 / 10))
    job = server.call("addJob", {"scriptText": script})["jobId"]
    server.wait_done([job])
    done_at = server.done[job]
    rid, _ = server.send("getPythonData", {"jobId": job})
    arrived, value = server.wait_response(rid)
    size = len(json.dumps(value))
    return {"bytes": size, "secondsAfterCompleted": arrived - done_at}


def big(server, mb, clients):
    """python_data of `mb` MB asked for by `clients` requests at once: the server streams the file
    (it must not hold it, so no OutOfMemoryError on the launcher's 512 MB heap)."""
    script = "python_data = {'values': [i * 0.5 for i in range(%d)]}" % int(mb * 1024 * 1024 / 10)
    job = server.call("addJob", {"scriptText": script}, timeout=600)["jobId"]
    server.wait_done([job], timeout=600)
    assert "COMPLETED" in server.states[job], server.states[job]
    rss_before = server.rss_mb()
    started = time.perf_counter()
    ids = [server.send("getPythonData", {"jobId": job})[0] for _ in range(clients)]
    sizes = [server.wait_response(rid, timeout=600)[1]["bytes"] for rid in ids]
    return {"mb": mb, "requests": clients, "bodyBytes": sizes, "seconds": time.perf_counter() - started,
            "serverRssBeforeMb": rss_before, "serverRssAfterMb": server.rss_mb(),
            "serverAlive": server.proc.poll() is None}


DATABLOCKS = """
import bpy, os, time
import bmesh
n = 1000
mesh = bpy.data.meshes.new('Grid')
bm = bmesh.new()
bmesh.ops.create_grid(bm, x_segments=n - 1, y_segments=n - 1, size=10)
bm.to_mesh(mesh)
bm.free()
obj = bpy.data.objects.new('Grid', mesh)
bpy.context.scene.collection.objects.link(obj)
# Blender's own write of the same block, side by side, into the job's folder.
own = os.path.join(os.getcwd(), 'own.blend')
started = time.perf_counter()
bpy.data.libraries.write(own, {obj}, fake_user=True)
own_ms = (time.perf_counter() - started) * 1000
python_data = {'vertices': len(mesh.vertices), 'ownWriteMs': own_ms, 'ownBytes': os.path.getsize(own)}
data_blocks = [obj]
"""


def datablocks(server, rounds=3):
    """A 1,000,000-vertex mesh returned as a data block: the runtime's collect (collectMs: the
    python_data file plus the library) against Blender's own libraries.write of the same block
    in the same job."""
    out = []
    for _ in range(rounds):
        job = server.call("addJob", {"scriptText": DATABLOCKS}, timeout=600)["jobId"]
        server.wait_done([job], timeout=600)
        detail = server.call("getJob", {"jobId": job})
        value = server.call("getPythonData", {"jobId": job})
        out.append({"vertices": value["vertices"], "ownWriteMs": value["ownWriteMs"],
                    "collectMs": detail["timing"]["collectMs"],
                    "ratio": detail["timing"]["collectMs"] / value["ownWriteMs"]})
    return out


def trace_breakdown(log_path, jobs):
    """Median offset (ms from the request read) of each stage of the traced jobs, from the
    server's log lines 'trace job-...: stage=ms ...' (BLENDER_JOBS_TRACE=1)."""
    stages = {}
    order = []
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if " trace job-" not in line:
                continue
            if line.split(" trace ", 1)[1].split(":", 1)[0] not in jobs:
                continue
            for pair in line.split(":", 3)[-1].split():
                if "=" not in pair:
                    continue
                name, value = pair.split("=", 1)
                if name not in stages:
                    stages[name] = []
                    order.append(name)
                stages[name].append(float(value))
    return [{"stage": n, "msP50": statistics.median(stages[n]), "jobs": len(stages[n])} for n in order]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", help="the server command (default: the distribution's launcher)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--gap-ms", type=float, default=0,
                    help="pause between two latency jobs (0: each job is sent as soon as the one before "
                         "completed, while its worker still cleans up)")
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--data-mb", type=float, default=10)
    ap.add_argument("--big-mb", type=float, default=0, help="also ask for a python_data this big, --big-clients times at once")
    ap.add_argument("--big-clients", type=int, default=3)
    ap.add_argument("--datablocks", action="store_true", help="also compare a 1M-vertex data block's write")
    ap.add_argument("--workspace", help="name this folder as the client's workspace in initialize (as an editor "
                    "does): the server keeps the jobs in that workspace's state directory under its data home, "
                    "not in a temporary one under /tmp")
    ap.add_argument("--json", help="write the results as JSON here")
    ap.add_argument("--trace", action="store_true",
                    help="start the server with BLENDER_JOBS_TRACE=1 and report the median timeline of a trivial job")
    args = ap.parse_args()
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    command = shlex.split(args.server) if args.server else default_server()
    command += ["--workers", str(args.workers)]
    env = dict(os.environ)
    if args.trace:
        env["BLENDER_JOBS_TRACE"] = "1"
    server = Server(command, env=env)
    results = {"command": command, "workers": args.workers}
    try:
        init = {}
        if args.workspace:
            init["rootUri"] = "file://" + os.path.abspath(args.workspace)
        results["stateDir"] = server.call("initialize", init).get("stateDir")
        stats = server.call("getStats")
        deadline = time.time() + 120
        while stats["freeWorkers"] < args.workers and time.time() < deadline:
            time.sleep(0.1)
            stats = server.call("getStats")
        results["rssIdleMb"] = server.rss_mb()
        latency(server, args.warmup)
        lat = latency(server, args.jobs, args.gap_ms / 1000.0)
        if args.trace:
            timings = [server.call("getJob", {"jobId": j})["timing"] for j in server.last_latency_jobs[-50:]]
            results["runtimeTimingP50"] = {k: statistics.median(t[k] for t in timings if k in t)
                                          for k in ("setupMs", "scriptMs", "resetMs", "collectMs")}
        results["latency"] = {k: {"p50": pct(v, 50), "p99": pct(v, 99)} for k, v in lat.items()}
        results["latencyGapMs"] = args.gap_ms
        if args.burst > 0:
            results["burst"] = burst(server, args.burst)
        if args.data_mb > 0:
            results["data"] = data(server, args.data_mb)
        results["rssAfterMb"] = server.rss_mb()
        if args.datablocks:
            results["datablocks"] = datablocks(server)
        if args.big_mb > 0:
            results["big"] = big(server, args.big_mb, args.big_clients)
        results["jobsRun"] = args.warmup + args.jobs + args.burst + (1 if args.data_mb > 0 else 0)
    finally:
        server.close()
    if args.trace:
        results["serverTimeline"] = trace_breakdown(os.path.join(HERE, "out", "client_bench.server.log"),
                                                    set(server.last_latency_jobs))
    out = json.dumps(results, indent=2)
    print(out)
    if args.json:
        with open(args.json, "w") as f:
            f.write(out)


if __name__ == "__main__":
    main()
