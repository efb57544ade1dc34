# blender-jobs worker runtime: the Python program a worker Blender runs.
#
# Started by the server as
#   blender -b --factory-startup -noaudio --python-exit-code 1 --python worker_runtime.py
# it connects back to the server, proves who it is (an HMAC of the server's challenge, keyed
# with the secret it was given), and then runs jobs one at a time in a blocking loop (under -b,
# bpy.app.timers never fire, so the loop must live here). Before every job it resets Blender to
# what a fresh process would show, so warm reuse does not change results.
#
# Compatible with Blender 2.93 (Python 3.9) up to 4.x: no match statements, no X | Y types.
#
# The channel protocol (ARCHITECTURE.md, "The worker channel"): frames of a 4-byte big-endian
# length and that many bytes of UTF-8 JSON, one object each, with a "type":
#   server -> worker: challenge, welcome, refused, run, shutdown; file (binary)
#   worker -> server: hello, started, progress, completed, failed, idle; console, result (binary)
# A binary frame's length word has the top bit set; its body is a 4-byte header length, the JSON
# header (the message) and raw bytes. They carry files and console output for a worker that does
# not share the server's disk (a pilot on a cluster node: BLENDER_JOBS_STAGE_DIR and
# BLENDER_JOBS_CONSOLE=channel, set by its batch script).
# encode() and decode() below are this side's one codec; the server's twin is ChannelCodec.java.
# The worker answers each run with started as soon as its main loop takes it: a worker that does
# not (its inbox disabled by an earlier job's script) is killed by the server. After a job's
# outcome it cleans up and says idle; the server sends no other run before that.
#
# Nothing the worker or its jobs start may outlive the server (Supervisor below): the runtime is
# a child subreaper (orphans of a job's daemons become its children, so they die with the job),
# asks for SIGTERM when its parent dies, watches its parent from a thread of its own, and leaves a
# small guard process that kills the whole tree if the runtime cannot do it itself. The lifeline
# (stdin) and the guard exist only when the launcher holds a pipe for them
# (BLENDER_JOBS_LIFELINE=stdin, the local launcher); a pilot's lifeline is its channel, and the
# Slurm job it runs in ends whatever is left when the pilot ends.
#
# A job's script runs in this interpreter, so after each job the runtime restores what the script
# may have changed (InterpreterBaseline) and asks to be replaced when it cannot (a thread left
# running, a patched standard module): the "recycle" field of idle.
#
# Console output of each job is attributed to it by marker lines written to the process's
# stdout (merged with stderr by the server) right before and after the job:
#   <RS><marker>:begin:<jobId><RS>\n  and  <RS><marker>:end:<jobId><RS>\n
# The marker is a per-process nonce, removed from the environment before any job runs. A pilot's
# console is a pipe of its own, forwarded over the channel as console chunks (ConsoleForwarder).

import builtins
import faulthandler
import gc
import hashlib
import hmac
import io
import json
import locale
import math
import operator
import os
import queue
import random
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import traceback
import types
import warnings

try:
    import resource  # Unix only
except ImportError:
    resource = None

import _signal  # signal.getsignal wraps every answer in an enum: 30 us for all signals instead of 2

import bpy

RUNTIME_VERSION = "0.2.0"  # the blender-jobs version this runtime ships with (checked by a unit test)
PROTOCOL = 4  # the channel protocol version (ChannelCodec.PROTOCOL on the server)
RUNTIME_FILE = os.path.abspath(__file__) if "__file__" in globals() else "worker_runtime.py"
# Longest texts a failure message may carry; the server refuses longer ones.
MAX_MESSAGE_CHARS = 64 * 1024
MAX_TRACEBACK_CHARS = 1024 * 1024
MAX_RECYCLE_CHARS = 4096
MAX_FRAME_BYTES = 8 * 1024 * 1024
BINARY_FLAG = 0x80000000
CHUNK_BYTES = 1024 * 1024  # file and result chunks (ChannelCodec.CHUNK_BYTES)
MAX_CHUNK_BYTES = 4 * 1024 * 1024
JOB_ID_CHARS = frozenset("0123456789abcdef")
# The inputs a "file" chunk may carry, and the file each is written to in a staged job folder.
INPUT_FILES = {"script": "script.py", "passedData": "passed_data.json", "library": "passed.blend",
               "blendFile": "scene.blend"}
# The results sent back from a staged job folder, by the name the server knows them by.
RESULT_FILES = (("pythonData", "python_data.json"), ("dataBlocks", "data_blocks.blend"))
CONTRACT_NAMES = ("update_job_progress", "passed_data", "passed_data_blocks", "python_data", "data_blocks")
# Data-block collections that describe Blender's UI, never worth appending into a job.
UI_COLLECTIONS = ("window_managers", "screens", "workspaces")


class JobFailure(Exception):
    """A failure with a machine-readable kind, reported to the server as the attempt's outcome."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message


class ProtocolError(Exception):
    """The server sent something the channel protocol does not allow: the runtime stops."""


# --------------------------------------------------------------------------- channel

def _clip(text, limit):
    return text if len(text) <= limit else text[:limit - 40] + "\n... (cut: %d characters in all)" % len(text)


def printable(text):
    """Text that is valid Unicode: a lone surrogate (what os.listdir gives for a file name that is
    not UTF-8) becomes its escape, e.g. 'file-\\udcff', so that it reaches a person as written."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def encode(message):
    """One frame for a worker -> server message (hello, started, progress, completed, failed, idle)."""
    kind = message.get("type")
    if kind == "failed":
        message["message"] = _clip(printable(message["message"]), MAX_MESSAGE_CHARS)
        if message.get("traceback") is not None:
            message["traceback"] = _clip(printable(message["traceback"]), MAX_TRACEBACK_CHARS)
    elif kind == "progress":
        if message.get("message") is not None:
            message["message"] = printable(message["message"])
    elif kind not in ("hello", "started", "completed", "idle"):
        raise ValueError("not a worker message: %r" % (kind,))
    if message.get("recycle") is not None:
        message["recycle"] = _clip(printable(message["recycle"]), MAX_RECYCLE_CHARS)
    # ensure_ascii as well: nothing that is not plain ASCII can break a frame.
    body = json.dumps(message, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
    return struct.pack(">I", len(body)) + body


def encode_binary(message, data):
    """One binary frame: a console or result chunk with its raw bytes."""
    if message.get("type") not in ("console", "result"):
        raise ValueError("not a binary worker message: %r" % (message.get("type"),))
    if len(data) > MAX_CHUNK_BYTES:
        raise ValueError("a chunk of %d bytes" % len(data))
    header = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return struct.pack(">II", BINARY_FLAG | (4 + len(header) + len(data)), len(header)) + header + data


def valid_job_id(job_id):
    return isinstance(job_id, str) and len(job_id) == 16 and job_id.startswith("job-") \
        and all(c in JOB_ID_CHARS for c in job_id[4:])


def decode_binary(header, data):
    """A server -> worker binary frame: only "file" chunks, checked field by field."""
    message = decode(header)
    if message["type"] != "file":
        raise ProtocolError("the server sent a %r message in a binary frame" % message["type"])
    message["data"] = data
    return message


def _require(message, field, kind, optional=False):
    value = message.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError("the server sent a %r message whose %r is %r" % (message.get("type"), field, value))
    return value


def decode(body):
    """A server -> worker message, checked field by field (challenge, welcome, refused, run, shutdown;
    file, the header of a binary frame)."""
    try:
        message = json.loads(body.decode("utf-8"))
    except ValueError as exc:
        raise ProtocolError("the server sent a frame that is not JSON: %s" % exc)
    if not isinstance(message, dict):
        raise ProtocolError("the server sent a frame that is not a JSON object")
    kind = message.get("type")
    if kind == "challenge":
        _require(message, "nonce", str)
    elif kind == "welcome":
        _require(message, "worker", str)
    elif kind == "refused":
        _require(message, "reason", str)
    elif kind == "file":
        if not valid_job_id(_require(message, "jobId", str)):
            raise ProtocolError("the server sent a file chunk for %r" % message["jobId"])
        if _require(message, "name", str) not in INPUT_FILES:
            raise ProtocolError("the server sent a file chunk of the unknown input %r" % message["name"])
        if _require(message, "offset", int) < 0:
            raise ProtocolError("the server sent a file chunk at offset %r" % message["offset"])
        _require(message, "last", bool)
    elif kind == "run":
        _require(message, "jobId", str)
        _require(message, "attempt", int)
        _require(message, "spec", dict)
        files = _require(message, "files", dict)
        for field in ("script", "passedData", "workDir", "resultDir"):
            _require(files, field, str)
        for field in ("library", "blendFile"):
            _require(files, field, str, optional=True)
    elif kind != "shutdown":
        raise ProtocolError("the server sent a message of unknown type %r" % (kind,))
    return message


class Channel:
    def __init__(self, sock):
        self.sock = sock
        self.send_lock = threading.Lock()

    def send(self, message):
        frame = encode(message)
        with self.send_lock:
            self.sock.sendall(frame)

    def send_binary(self, message, data):
        frame = encode_binary(message, data)
        with self.send_lock:
            self.sock.sendall(frame)

    def send_frames(self, frames):
        """Several encoded frames in one write: one wake-up of the server, not one per frame."""
        with self.send_lock:
            self.sock.sendall(b"".join(frames))

    def _read_exact(self, n):
        chunks = []
        while n > 0:
            chunk = self.sock.recv(min(n, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def receive(self):
        """The next server message, or None when the channel closed."""
        header = self._read_exact(4)
        if header is None:
            return None
        (length,) = struct.unpack(">I", header)
        binary = bool(length & BINARY_FLAG)
        length &= ~BINARY_FLAG
        if length > MAX_FRAME_BYTES:
            raise ProtocolError("the server sent a frame of %d bytes" % length)
        body = self._read_exact(length)
        if body is None:
            return None
        if not binary:
            message = decode(body)
            if message["type"] == "file":
                raise ProtocolError("the server sent a file chunk in a JSON frame")
            return message
        if length < 4:
            raise ProtocolError("the server sent a binary frame of %d bytes" % length)
        (head,) = struct.unpack(">I", body[:4])
        if head > length - 4:
            raise ProtocolError("the server sent a binary frame whose header does not fit")
        return decode_binary(body[4:4 + head], body[4 + head:])


def handshake(channel, worker_id, secret):
    """Answer the server's challenge; returns once it has welcomed us, raises if it refused."""
    challenge = channel.receive()
    if challenge is None or challenge["type"] != "challenge":
        raise ProtocolError("the server did not begin with a challenge")
    proof = hmac.new(secret.encode("utf-8"), ("%s:%s" % (challenge["nonce"], worker_id)).encode("utf-8"),
                     hashlib.sha256).hexdigest()
    channel.send({"type": "hello", "protocol": PROTOCOL, "runtimeVersion": RUNTIME_VERSION, "worker": worker_id,
                  "pid": os.getpid(), "blenderVersion": bpy.app.version_string,
                  "pythonVersion": "%d.%d.%d" % sys.version_info[:3], "proof": proof})
    answer = channel.receive()
    if answer is None:
        raise ProtocolError("the server closed the channel during the handshake")
    if answer["type"] == "refused":
        raise ProtocolError("the server refused this worker: %s" % answer["reason"])
    if answer["type"] != "welcome":
        raise ProtocolError("the server answered hello with %r" % answer["type"])


# --------------------------------------------------------------------------- process supervision

# Bound once at start-up: the kill path and the watchdog must keep working while a job's script
# has patched os, time, select or builtins (the worker is replaced after such a job, but the job
# may still be running when the server dies).
_kill = os.kill
_waitpid = os.waitpid
_listdir = os.listdir
_open = io.open
_read = os.read
# The result's write (write_result_atomically) runs right after the job's script, with what the
# script may have patched still in place until the worker is replaced.
_os_open = os.open
_write = os.write
_fstat = os.fstat
_ftruncate = os.ftruncate
_close = os.close
_replace = os.replace
# O_NONBLOCK: a FIFO a script put where the result goes fails the write at once instead of
# blocking the worker until a reader comes (for a regular file it changes nothing).
_RESULT_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NONBLOCK", 0)
_exit = os._exit
_getpid = os.getpid
_getppid = os.getppid
_sleep = time.sleep
_monotonic = time.monotonic
_select = select.select
_SIGKILL = getattr(signal, "SIGKILL", signal.SIGTERM)  # no SIGKILL on Windows (where /proc is missing too)
_WNOHANG = getattr(os, "WNOHANG", 1)

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option, value):
    """prctl(2) through ctypes; False where it failed or does not exist (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(ctypes.c_int(option), ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0),
                          ctypes.c_ulong(0)) == 0
    except Exception:
        return False


def _children_by_task(pid):
    """Direct children of a process from /proc/PID/task/*/children (cheap: a few small
    files), or None where the kernel does not offer it."""
    try:
        tasks = _listdir("/proc/%d/task" % pid)
    except OSError:
        return None
    children = []
    for task in tasks:
        try:
            with _open("/proc/%d/task/%s/children" % (pid, task), "rb") as f:
                children.extend(int(x) for x in f.read().split())
        except FileNotFoundError:
            return None  # a kernel without it (or a thread that just ended: the scan is right too)
        except (OSError, ValueError):
            pass
    return children


def _children_by_scan():
    """ppid -> children for every process, by reading /proc/*/stat (slower fallback)."""
    children = {}
    try:
        entries = _listdir("/proc")
    except OSError:
        return children
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with _open("/proc/%s/stat" % entry, "rb") as f:
                line = f.read().decode("ascii", "replace")
            ppid = int(line[line.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        except (OSError, ValueError):
            pass
    return children


def _descendants(root, exclude):
    """(every descendant of root, root's direct children), leaving out the processes in exclude
    and everything below them."""
    direct = _children_by_task(root)
    scan = None
    if direct is None:
        scan = _children_by_scan()
        direct = scan.get(root, [])
    direct = [pid for pid in direct if pid not in exclude]
    victims, stack = [], list(direct)
    while stack:
        pid = stack.pop()
        if pid in exclude:
            continue
        victims.append(pid)
        stack.extend(scan.get(pid, []) if scan is not None else (_children_by_task(pid) or []))
    return victims, direct


def _reap(pids, within):
    deadline = _monotonic() + within
    pending = set(pids)
    while pending and _monotonic() < deadline:
        for pid in list(pending):
            try:
                done, _ = _waitpid(pid, _WNOHANG)
            except OSError:  # not our child (any more)
                done = pid
            if done:
                pending.discard(pid)
        if pending:
            _sleep(0.005)


def kill_descendants(exclude=()):
    """Kill every process this worker started and reap them, so that nothing a script started
    outlives its job. The runtime is a child subreaper (Supervisor), so a daemon that forked
    twice and called setsid is still below it, and processes orphaned by the kill come back to
    it as children: each round takes what the previous one left (at most five rounds, each
    waiting at most a second for the killed to be reaped). Linux /proc; elsewhere the server
    kills process trees on timeout, cancel and exit."""
    me = _getpid()
    for _round in range(5):
        victims, direct = _descendants(me, exclude)
        if not victims:
            return
        for pid in victims:
            try:
                _kill(pid, _SIGKILL)
            except OSError:
                pass
        _reap(direct, 1.0)


# The guard: a small shell process the runtime leaves beside itself, for when the runtime cannot
# act (a job ignores SIGTERM and never lets another Python thread run). Its stdin is the
# lifeline, a pipe the server holds open and never writes to: `read` returns at its end, when
# the server is gone. It then gives the runtime 2 s to clean up itself (the runtime is its
# parent: if the runtime has exited, the guard was re-parented and stops here), stops the
# runtime's Blender so that it cannot start anything more, kills every child of it in rounds
# (the runtime is a subreaper, so grandchildren orphaned by the kill come back as its
# children), and then kills Blender.
GUARD_SCRIPT = """
blender=$1
while read -r line; do :; done
sleep 2
stat=
read -r stat < /proc/$$/stat
set -- $stat
[ "$4" = "$blender" ] || exit 0
kill -STOP "$blender" 2>/dev/null
for round in 1 2 3 4 5; do
  for file in /proc/"$blender"/task/*/children; do
    children=
    read -r children < "$file" 2>/dev/null
    for child in $children; do
      [ "$child" = "$$" ] || kill -KILL "$child" 2>/dev/null
    done
  done
  sleep 0.1
done
kill -KILL "$blender" 2>/dev/null
"""


class Supervisor:
    """Makes sure that nothing this worker or its jobs start outlives the server, even when a
    job's script has disabled parts of the runtime:
    - the runtime is a child subreaper (PR_SET_CHILD_SUBREAPER): a job's daemon that forks twice
      and calls setsid is re-parented to it, not to init, so kill_descendants finds it;
    - it asks the kernel for SIGTERM when its parent (the server) dies (PR_SET_PDEATHSIG), and
      its SIGTERM handler kills everything it started before exiting;
    - a watchdog thread of its own sees the lifeline (its stdin, a pipe only the server holds)
      reach its end, or its parent change, and does the same (a script that replaced the
      channel's receive, so that the inbox thread never sees the channel close, stops neither);
    - the guard process (GUARD_SCRIPT) kills the whole tree 2 s after the server is gone if the
      runtime has not done it itself (a job that ignores SIGTERM and holds the interpreter lock).
    Not SIGKILL as the parent-death signal: it would leave the job's daemons behind."""

    def __init__(self):
        self.pid = _getpid()
        self.parent = _getppid()
        self.lifeline = None
        self.guard = None

    def start(self, lifeline):
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if lifeline:
            self.lifeline = self._take_stdin()
            if self.lifeline is not None:
                self.guard = self._start_guard(self.lifeline)
        thread = threading.Thread(target=self._watch, name="blender-jobs-watchdog", daemon=True)
        thread.start()

    @staticmethod
    def _take_stdin():
        """Keeps the lifeline on a private descriptor (not inherited by a job's children) and
        gives fd 0 an empty /dev/null, so that jobs read an empty stdin as before."""
        try:
            fd = os.dup(0)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            return fd
        except OSError:
            return None

    def _start_guard(self, lifeline):
        try:
            return subprocess.Popen(["sh", "-c", GUARD_SCRIPT, "blender-jobs-guard", str(self.pid)], stdin=lifeline,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
        except OSError as exc:
            sys.__stderr__.write("blender-jobs worker: no guard process (%s)\n" % exc)
            return None

    def guard_lost(self):
        """Whether the guard this worker started has died (a job killed it)."""
        return self.guard is not None and self.guard.poll() is not None

    def keep(self):
        """Processes a job's clean-up must not kill."""
        return (self.guard.pid,) if self.guard is not None and self.guard.returncode is None else ()

    def _on_sigterm(self, signum, frame):
        self.die(128 + signum)

    def _watch(self):
        lifeline = self.lifeline
        while True:
            if lifeline is not None:
                try:
                    ready = _select([lifeline], [], [], 0.5)[0]
                    if ready and not _read(lifeline, 4096):
                        self.die(0)  # the end of the lifeline: the server is gone
                except (OSError, ValueError):
                    lifeline = None  # a script closed it; the parent check still works
            else:
                _sleep(0.5)
            if _getppid() != self.parent:
                self.die(0)

    def die(self, code):
        """Kill everything this worker started, the guard included, and exit at once."""
        try:
            kill_descendants()
        finally:
            _exit(code)


def start_inbox(channel, supervisor, staging=None):
    """Read server messages on a thread so that the worker notices the server's death
    (its channel closing) even while a job is running, and exits by itself. File chunks are
    written to disk here as they arrive (never queued), so a large input costs one chunk of
    memory; the run that follows them is queued after its files are complete."""
    inbox = queue.Queue()

    def reader():
        try:
            while True:
                message = channel.receive()
                if message is None:
                    break
                if message["type"] == "file":
                    if staging is None:
                        raise ProtocolError("the server sent a file chunk to a worker that shares its disk")
                    staging.write_chunk(message)
                    continue
                inbox.put(message)
        except ProtocolError as exc:
            sys.__stderr__.write("blender-jobs worker: %s; exiting\n" % exc)
        except Exception:
            pass
        # The server is gone (or closed us): nothing may outlive it.
        supervisor.die(0)

    thread = threading.Thread(target=reader, name="blender-jobs-inbox", daemon=True)
    thread.start()
    return inbox


# --------------------------------------------------------------------------- progress

class ProgressReporter:
    """Coalesces update_job_progress calls on the worker side: the first report after a quiet
    period is sent at once, later ones at most every `interval` seconds, and the last value
    always goes out (from the flusher thread, or before the job's result).

    The calling thread takes no lock unless it sends: update_job_progress is a closure that
    checks its argument, stores the latest report as one tuple (an atomic store under the GIL)
    and reads one clock, so a script calling it in a tight loop pays about 0.1 microsecond per
    call (bench/RESULTS.md). The wall-clock time of a report is derived from its monotonic time
    only when it is sent."""

    def __init__(self, channel, interval):
        self.channel = channel
        self.interval = interval
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.job_id = None
        self.token = 0
        self.latest = None  # (token, fraction, message, monotonic time) of the newest report
        self.sent = None  # the report last sent: a newer tuple is one still to send
        self.next_send = 0.0
        self.flush_pending = False
        thread = threading.Thread(target=self._flusher, name="blender-jobs-progress", daemon=True)
        thread.start()

    def begin(self, job_id):
        """Start reporting for one attempt; returns the attempt's own update_job_progress. The
        function of an earlier attempt, still called by a thread that attempt left running,
        reports nothing (and the worker is replaced after such an attempt anyway)."""
        with self.lock:
            self.token += 1
            token = self.token
            self.job_id = job_id
            self.latest = None
            self.sent = None
            self.next_send = 0.0
        state = self
        lock = self.lock
        wake = self.wake
        monotonic = time.monotonic

        def update_job_progress(fraction, message=None):
            if state.token != token:
                return  # a thread of an earlier attempt
            if type(fraction) is not float:
                fraction = _progress_number(fraction)
            if not 0.0 <= fraction <= 1.0:
                fraction = _progress_clamped(fraction)
            if message is not None:
                message = str(message)[:1000]
            now = monotonic()
            state.latest = (token, fraction, message, now)
            if now >= state.next_send:
                with lock:
                    state._send_latest()
            elif not state.flush_pending:
                state.flush_pending = True
                wake.set()

        return update_job_progress

    def end(self):
        """Send the last value not yet sent (before the result goes out) and stop reporting."""
        with self.lock:
            self._send_latest()
            self.job_id = None
            self.latest = None

    def _send_latest(self):
        # Called with self.lock held.
        latest = self.latest
        if self.job_id is None or latest is None or latest is self.sent or latest[0] != self.token:
            return
        _token, fraction, message, reported = latest
        wall = reported + (time.time() - time.monotonic())
        msg = {"type": "progress", "jobId": self.job_id, "progress": fraction, "reportedAt": int(wall * 1000)}
        if message is not None:
            msg["message"] = message
        self.channel.send(msg)
        self.sent = latest
        self.next_send = time.monotonic() + self.interval

    def _flusher(self):
        while True:
            self.wake.wait()
            self.wake.clear()
            delay = self.next_send - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with self.lock:
                self.flush_pending = False
                self._send_latest()


def _progress_number(fraction):
    """update_job_progress's fraction as a float: an int converts; a bool or a non-number is refused."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError("update_job_progress expects a number from 0.0 to 1.0, got %r" % (fraction,))
    return float(fraction)


def _progress_clamped(fraction):
    """A fraction outside 0.0 .. 1.0 clamped to it; NaN is refused."""
    if fraction != fraction:
        raise ValueError("update_job_progress got NaN; pass a number from 0.0 to 1.0")
    return 0.0 if fraction < 0.0 else 1.0


# --------------------------------------------------------------------------- output

class OutputAttribution:
    """Gives each job its own sys.stdout/sys.stderr on a private duplicate of fd 1, and
    brackets the job's console output with marker lines. A script that closes its stdout
    only closes its own duplicate."""

    def __init__(self, marker, forwarder=None):
        self.marker = marker
        self.forwarder = forwarder  # a ConsoleForwarder: it attributes output itself, no markers
        self.fd = os.dup(1)
        self.saved = None
        self.streams = []
        self.retired = []  # the last job's streams, closed when the next job begins

    def _mark(self, what, job_id):
        if self.forwarder is not None:
            if what == "begin":
                self.forwarder.begin(job_id)
            else:
                self.forwarder.end(job_id)
            return
        line = "\x1e%s:%s:%s\x1e\n" % (self.marker, what, job_id)
        os.write(self.fd, line.encode("utf-8"))

    def begin(self, job_id):
        flush_quietly(sys.stdout, sys.stderr)
        for stream in self.retired:
            try:
                stream.close()
            except Exception:
                pass
        self.retired = []
        self._mark("begin", job_id)
        self.saved = (sys.stdout, sys.stderr)
        out = io.TextIOWrapper(io.FileIO(os.dup(self.fd), "wb"), encoding="utf-8",
                               errors="backslashreplace", line_buffering=True, write_through=True)
        err = io.TextIOWrapper(io.FileIO(os.dup(self.fd), "wb"), encoding="utf-8",
                               errors="backslashreplace", line_buffering=True, write_through=True)
        self.streams = [out, err]
        sys.stdout, sys.stderr = out, err

    def end(self, job_id):
        flush_quietly(sys.stdout, sys.stderr, *self.streams)
        if self.saved is not None:
            sys.stdout, sys.stderr = self.saved
        # Not closed yet: a thread the job left running that prints would die of "I/O operation
        # on closed file" and, gone, escape the check that replaces a worker with a job's thread
        # still running (RuntimeHardeningIT). The next job's begin() closes them.
        self.retired = self.streams
        self.streams = []
        # The marker may follow a partial line of output; the server splits it off.
        self._mark("end", job_id)


def flush_quietly(*streams):
    for stream in streams:
        try:
            stream.flush()
        except Exception:
            pass


# --------------------------------------------------------------------------- data blocks

def collection_names_by_type():
    """Map an RNA type identifier (e.g. 'Object', 'Mesh') to its bpy.data collection name."""
    mapping = {}
    for prop in bpy.data.bl_rna.properties:
        if prop.type == "COLLECTION" and prop.fixed_type is not None:
            mapping.setdefault(prop.fixed_type.identifier, prop.identifier)
    return mapping


def collection_name_of(block, mapping):
    rna = block.bl_rna
    while rna is not None:
        name = mapping.get(rna.identifier)
        if name is not None:
            return name
        rna = rna.base
    raise JobFailure("RESULT_NOT_SERIALIZABLE",
                     "cannot tell which bpy.data collection holds %r" % (block,))


def append_passed_blocks(library, names):
    """Append blocks of a .blend library; `names` maps a collection ('objects') to names,
    or is None for every block. Returns the appended data blocks in a stable order."""
    try:
        with bpy.data.libraries.load(library, link=False) as (data_from, data_to):
            available = {}
            for attr in dir(data_from):
                if attr.startswith("_") or attr in UI_COLLECTIONS:
                    continue
                value = getattr(data_from, attr, None)
                if isinstance(value, list):
                    available[attr] = list(value)
            wanted = {}
            if names is None:
                for attr, present in available.items():
                    if present:
                        wanted[attr] = present
            else:
                for attr, requested in names.items():
                    if attr not in available:
                        raise JobFailure("SETUP_FAILED",
                                         "passedDataBlocks.names has unknown type %r; use a bpy.data "
                                         "collection name such as 'objects', 'meshes' or 'materials'" % attr)
                    missing = [n for n in requested if n not in available[attr]]
                    if missing:
                        raise JobFailure("SETUP_FAILED",
                                         "the library %s has no %s named %s (it has: %s)"
                                         % (library, attr, ", ".join(repr(m) for m in missing),
                                            ", ".join(repr(a) for a in available[attr][:20]) or "none"))
                    wanted[attr] = list(requested)
            for attr, requested in wanted.items():
                setattr(data_to, attr, requested)
    except JobFailure:
        raise
    except Exception as exc:
        raise JobFailure("SETUP_FAILED", "could not append data blocks from %s: %s" % (library, exc))

    blocks = []
    for attr in sorted(wanted):
        for block in getattr(data_to, attr):
            if block is not None:
                blocks.append(block)
    scene = bpy.context.scene
    for block in blocks:
        if isinstance(block, bpy.types.Object) and not block.users_collection:
            scene.collection.objects.link(block)
        elif isinstance(block, bpy.types.Collection) and not block.users:
            scene.collection.children.link(block)
    return blocks


def write_data_blocks(blocks, path):
    if blocks is None:
        return None
    if isinstance(blocks, (set, frozenset, tuple)):
        blocks = list(blocks)
    if not isinstance(blocks, list):
        raise JobFailure("RESULT_NOT_SERIALIZABLE",
                         "data_blocks must be a list of Blender data blocks, got %s" % type(blocks).__name__)
    if not blocks:
        return None
    mapping = collection_names_by_type()
    kinds = {}  # Python type -> collection: the RNA walk once per type, not once per block
    listing = {}
    unique = []
    seen = set()  # a set, not "name in list": 100,000 blocks must not take quadratic time
    for index, block in enumerate(blocks):
        if not isinstance(block, bpy.types.ID):
            raise JobFailure("RESULT_NOT_SERIALIZABLE",
                             "data_blocks[%d] is a %s, not a Blender data block (bpy.types.ID)"
                             % (index, type(block).__name__))
        kind = kinds.get(type(block))
        if kind is None:
            kind = kinds[type(block)] = collection_name_of(block, mapping)
        if (kind, block.name) not in seen:
            seen.add((kind, block.name))
            listing.setdefault(kind, []).append(block.name)
            unique.append(block)
    tmp = path + ".tmp.blend"
    bpy.data.libraries.write(tmp, set(unique), fake_user=True)
    os.replace(tmp, path)
    return listing


# --------------------------------------------------------------------------- python data

def to_json(value, path):
    """Convert python_data to plain JSON values; tuples and mathutils values become arrays,
    anything else fails with the key path that holds it."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        _check_unicode(value, path)
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise JobFailure("RESULT_NOT_SERIALIZABLE",
                             "%s is %r, which JSON cannot carry; use None or a string" % (path, value))
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int, float)):
                raise JobFailure("RESULT_NOT_SERIALIZABLE",
                                 "%s has a key of type %s (%r); JSON object keys must be strings (int and "
                                 "float keys are converted with str())" % (path, type(key).__name__, key))
            if isinstance(key, str):
                _check_unicode(key, "a key of " + path)
            elif isinstance(key, float) and (math.isnan(key) or math.isinf(key)):
                raise JobFailure("RESULT_NOT_SERIALIZABLE",
                                 "%s has the key %r, which JSON cannot carry" % (path, key))
            out[str(key)] = to_json(item, "%s[%r]" % (path, key))
        return out
    if isinstance(value, (list, tuple)):
        return [to_json(item, "%s[%d]" % (path, i)) for i, item in enumerate(value)]
    try:
        converted = _json_default(value)  # the same conversions as the fast path
    except TypeError:
        raise JobFailure("RESULT_NOT_SERIALIZABLE",
                         "%s holds a value of type %s, which is not JSON-serializable; store plain values "
                         "(numbers, strings, lists, dicts) or, for a data block, its name"
                         % (path, type(value).__name__))
    return to_json(converted, path)


def _check_unicode(text, path):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JobFailure("RESULT_NOT_SERIALIZABLE",
                         "%s is a string that is not valid Unicode (it holds a lone surrogate, as os.listdir "
                         "gives for a file name that is not UTF-8: %r); decode such names with "
                         "errors='replace', or store them as lists of bytes" % (path, text[:80]))


def _json_default(value):
    """Fast-path conversion of the non-JSON types python_data may hold (mathutils, numpy);
    anything else raises, and the slow path then names the key that holds it."""
    type_name = type(value).__name__
    if type_name == "Matrix":
        return [tuple(row) for row in value]
    if type_name in ("Vector", "Color", "Euler", "Quaternion", "bpy_prop_array", "IDPropertyArray"):
        return list(value)
    if type_name == "IDPropertyGroup" and hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    raise TypeError(type_name)


# What json.dumps writes for a key True, False or None, which it accepts and python_data must not
# (protocol.md: such keys fail). A string key "true" is written the same way, so finding one of
# these only sends the value through the checking walk, which tells the two apart.
_KEYWORD_KEYS = (b'"true":', b'"false":', b'"null":')


def encode_python_data(value):
    """python_data as UTF-8 JSON bytes. json.dumps does the common case at C speed; only when
    it refuses a value (or the text is not valid Unicode, or may hold a key True, False or None)
    does the recursive to_json walk run, to name the offending key path."""
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                             default=_json_default).encode("utf-8")
        for keyword in _KEYWORD_KEYS:
            if keyword in encoded:
                to_json(value, "python_data")  # raises when the key is True, False or None
                break
        return encoded
    except (TypeError, ValueError, OverflowError, RecursionError):
        # UnicodeEncodeError is a ValueError: a lone surrogate somewhere.
        try:
            return json.dumps(to_json(value, "python_data"), ensure_ascii=False, allow_nan=False,
                              separators=(",", ":")).encode("utf-8")
        except RecursionError:
            raise JobFailure("RESULT_NOT_SERIALIZABLE",
                             "python_data is nested too deeply or refers to itself (a reference cycle)")


def write_result_atomically(data, path):
    """Write bytes to a temporary file and rename it into place; returns (size, sha256 hex),
    which the server checks before it trusts or serves the file. The temporary is usually there,
    empty (the server makes it with the job's folder): it is written over and what is left of it
    cut off, never opened with O_TRUNC, which costs 30 us even on an empty file on ext4."""
    tmp = path + ".tmp"
    try:
        fd = _os_open(tmp, _RESULT_OPEN_FLAGS, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[_write(fd, view):]
            if _fstat(fd).st_size > len(data):
                _ftruncate(fd, len(data))
        finally:
            _close(fd)
        _replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)  # a half-written file is never left behind
        except OSError:
            pass
        raise
    return len(data), hashlib.sha256(data).hexdigest()


def ensure_directory(path):
    """os.makedirs(path, exist_ok=True), without its mkdir when the folder is there (the server
    makes a job's folders ahead): a mkdir that finds the folder costs as much as one that makes
    it (0.3 ms measured under load, each job paid two), a stat a few microseconds."""
    if not os.path.isdir(path):
        os.makedirs(path, exist_ok=True)


def clear_directory(path, keep=()):
    """Empty a folder the runtime owns (results of an earlier attempt), keeping the folder and
    the files named in keep that are files of their own (regular, one link: never one an earlier
    attempt's script linked to another file), which are written over, not read (the server makes
    result/python_data.json.tmp ahead: writing into it costs microseconds, creating it about
    0.3 ms of CPU on the measured disks)."""
    ensure_directory(path)
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if entry in keep:
            try:
                st = os.lstat(full)
                if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                    continue
            except OSError:
                pass
        try:
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full, ignore_errors=True)
            else:
                os.remove(full)
        except OSError:
            pass


# --------------------------------------------------------------------------- between jobs

# Hooks in sys a job may replace; restored by identity.
_SYS_ATTRIBUTES = ("excepthook", "displayhook", "breakpointhook", "unraisablehook", "stdin", "__stdin__",
                   "__stdout__", "__stderr__")
_RLIMITS = ("RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_NOFILE", "RLIMIT_AS",
            "RLIMIT_NPROC", "RLIMIT_MEMLOCK")
_ITIMERS = tuple(getattr(signal, name) for name in ("ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF")
                 if hasattr(signal, name))
_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python, whose attributes can be replaced
_is_not = operator.is_not
_call = getattr(operator, "call", None) or (lambda function, argument: function(argument))  # operator.call: 3.11+


def _standard_library():
    """A test (name, module) -> whether the module is part of Python's standard library."""
    names = getattr(sys, "stdlib_module_names", None)  # Python 3.10+
    if names is not None:
        return lambda name, module: name.partition(".")[0] in names
    # Python 3.9 (Blender 2.93): built in, or a file in the standard library's folder.
    roots = []
    for key in ("stdlib", "platstdlib"):
        try:
            roots.append(os.path.realpath(sysconfig.get_paths()[key]) + os.sep)
        except Exception:
            pass

    def is_standard(name, module):
        path = getattr(module, "__file__", None)
        if path is None:
            return name in sys.builtin_module_names
        path = os.path.realpath(path)
        return any(path.startswith(root) for root in roots) and "-packages" + os.sep not in path

    return is_standard


def _fingerprint(label, mapping):
    """The functions, classes, modules and descriptors a namespace holds, to tell later whether
    one was replaced: (label, getter, mapping, keys, values). Compared in C (an itemgetter over
    the keys; equality of these objects is identity), so checking 4,600 of them takes about
    100 us, 0.5 ms with cold caches."""
    keys = []
    for key, value in list(mapping.items()):
        if isinstance(key, str) and (callable(value) or isinstance(value, (types.ModuleType, property, staticmethod,
                                                                             classmethod))):
            keys.append(key)
    if not keys:
        return None
    keys = tuple(keys)
    getter = operator.itemgetter(*(keys + keys[:1]))  # two keys at least: always a tuple
    return label, getter, mapping, keys, getter(mapping)


def _foreign_functions(module, is_standard):
    """Functions in a standard module that were defined elsewhere than in the standard library
    (a job's script, `__main__`): the module was patched."""
    found = []
    for key, value in list(vars(module).items()):
        if not isinstance(value, (types.FunctionType, types.MethodType)):
            continue
        owner = getattr(value, "__module__", None)
        if owner == "__main__" or (isinstance(owner, str) and owner in sys.modules
                                   and not is_standard(owner, sys.modules[owner])):
            found.append(key)
    return found


class InterpreterBaseline:
    """The interpreter and process state every job must find, taken once when the worker is
    ready (after the runtime's own threads, handlers and imports exist), and what is done after
    each job to get back to it (protocol.md §6 lists it):

    - reset(), right after the script returns, before its results are collected: timers and
      alarms, signal handlers and the signal mask, the umask, trace and profile functions, the
      recursion limit and other interpreter settings, sys hooks, import hooks, builtins, warning
      filters, the garbage collector's settings, the locale, the default socket timeout, resource
      limits, priority and CPU affinity, tempfile's folder, the random generator's seed;
    - check(), after the job's outcome has gone out (so that it costs the outcome nothing: about
      0.1 ms with warm caches, 0.5 ms cold): what cannot be undone in a running process (a thread
      the job left running, a standard module, class or the runtime's own code patched) is
      reported, and the worker is replaced (`idle` with `recycle`). reset() reports the same way
      what it could not put back (a handler Blender, not Python, had installed).

    A script that sets out to break the runtime can defeat any check made in its own process;
    the server does not rely on these for that (see Supervisor and the `started` message)."""

    def __init__(self, runtime_globals):
        self.is_standard = _standard_library()
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        self.signals = {}
        for signum in signal.valid_signals() if hasattr(signal, "valid_signals") else range(1, signal.NSIG):
            if signum in (getattr(signal, "SIGKILL", None), getattr(signal, "SIGSTOP", None)):
                continue
            try:
                self.signals[signum] = _signal.getsignal(signum)
            except (OSError, ValueError):
                pass
        self.sigmask = signal.pthread_sigmask(signal.SIG_BLOCK, ()) if hasattr(signal, "pthread_sigmask") else None
        self.wakeup_fd = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(self.wakeup_fd)
        self.faulthandler = faulthandler.is_enabled()
        self.recursion_limit = sys.getrecursionlimit()
        self.switch_interval = sys.getswitchinterval()
        self.int_max_str_digits = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else None
        self.dlopenflags = sys.getdlopenflags() if hasattr(sys, "getdlopenflags") else None
        self.dont_write_bytecode = sys.dont_write_bytecode
        self.sys_attributes = {name: getattr(sys, name) for name in _SYS_ATTRIBUTES if hasattr(sys, name)}
        self.meta_path = list(sys.meta_path)
        self.path_hooks = list(sys.path_hooks)
        self.builtins = dict(vars(builtins))
        self.warnings_filters_list = warnings.filters
        self.warnings_filters = list(warnings.filters)
        self.warnings_functions = (warnings.showwarning, warnings.formatwarning)
        self.gc = (gc.isenabled(), gc.get_threshold(), list(gc.callbacks))
        self.locale = locale.setlocale(locale.LC_ALL, None)
        self.socket_timeout = socket.getdefaulttimeout()
        self.rlimits = {}
        if resource is not None:
            for name in _RLIMITS:
                if hasattr(resource, name):
                    self.rlimits[name] = resource.getrlimit(getattr(resource, name))
        self.priority = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else None
        self.affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        self.tempdir = tempfile.tempdir
        self.tzname = time.tzname
        self.fingerprints = []
        self.known_modules = set()
        self._fingerprint_modules()
        entry = _fingerprint("the worker runtime", runtime_globals)
        if entry is not None:
            self.fingerprints.append(entry)
        for value in list(runtime_globals.values()):
            if isinstance(value, type) and value.__module__ == runtime_globals.get("__name__"):
                entry = _fingerprint("the worker runtime's %s" % value.__name__, value.__dict__)
                if entry is not None:
                    self.fingerprints.append(entry)
        self._index()

    def _index(self):
        self.getters = [f[1] for f in self.fingerprints]
        self.mappings = [f[2] for f in self.fingerprints]
        self.values = [f[4] for f in self.fingerprints]
        self.modules_seen = len(sys.modules)

    def _fingerprint_modules(self):
        """Fingerprints the public standard modules (and their public classes) not fingerprinted
        yet; returns the names of those a job had already patched before they could be (see
        check). Private modules and classes (`_ast`, `importlib._bootstrap`, `ast._Unparser`) are
        implementation details that scripts do not patch; leaving them out halves the cost."""
        patched = []
        for name, module in list(sys.modules.items()):
            if name in self.known_modules or not isinstance(module, types.ModuleType) or name == "builtins":
                continue
            self.known_modules.add(name)
            if not self.is_standard(name, module) or "._" in "." + name:
                continue
            namespace = vars(module)
            if any(namespace is f[2] for f in self.fingerprints):
                continue  # the same module under a second name
            foreign = _foreign_functions(module, self.is_standard)
            if foreign:
                patched.append("%s (%s)" % (name, ", ".join(foreign[:5])))
            entry = _fingerprint("the standard module %s" % name, namespace)
            if entry is not None:
                self.fingerprints.append(entry)
            for value in list(namespace.values()):
                if (isinstance(value, type) and value.__module__ == name and value.__flags__ & _HEAP_TYPE
                        and not value.__name__.startswith("_")):
                    entry = _fingerprint("the standard class %s.%s" % (name, value.__qualname__), value.__dict__)
                    if entry is not None:
                        self.fingerprints.append(entry)
        entry = _fingerprint("sys.modules", sys.modules)
        self.fingerprints = [f for f in self.fingerprints if f[0] != "sys.modules"]
        if entry is not None:
            keys = tuple(k for k in entry[3] if k in self.known_modules and "._" not in "." + k
                         and self.is_standard(k, sys.modules[k]))
            if keys:
                getter = operator.itemgetter(*(keys + keys[:1]))
                self.fingerprints.append(("sys.modules", getter, sys.modules, keys, getter(sys.modules)))
        return patched

    # ---------------------------------------------------------------- right after the script

    def reset(self):
        """Undoes what a job may have changed; returns what could not be undone."""
        problems = []
        for step in (self._reset_signals, self._reset_process, self._reset_interpreter, self._reset_modules):
            try:
                step(problems)
            except Exception as exc:
                problems.append("the worker could not undo what the job changed (%s: %s)"
                                % (step.__name__, _describe(exc)))
        return problems

    def _reset_signals(self, problems):
        for which in _ITIMERS:  # ITIMER_REAL also holds signal.alarm()
            if signal.getitimer(which)[0]:
                signal.setitimer(which, 0)
        getsignal = _signal.getsignal
        for signum, handler in self.signals.items():
            if getsignal(signum) is handler:
                continue
            if handler is None:
                problems.append("the job replaced the handler of signal %d that Blender had installed, which Python "
                                "cannot put back" % signum)
            else:
                _signal.signal(signum, handler)
        if self.sigmask is not None and signal.pthread_sigmask(signal.SIG_BLOCK, ()) != self.sigmask:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.sigmask)
        signal.set_wakeup_fd(self.wakeup_fd)
        if faulthandler.is_enabled() and not self.faulthandler:
            faulthandler.disable()  # gives back the handlers it replaced (Blender's crash handler)
        faulthandler.cancel_dump_traceback_later()

    def _reset_process(self, problems):
        os.umask(self.umask)
        for name, limits in self.rlimits.items():
            which = getattr(resource, name)
            if resource.getrlimit(which) != limits:
                try:
                    resource.setrlimit(which, limits)
                except (OSError, ValueError):
                    problems.append("the job lowered the hard limit %s, which the worker may not raise again" % name)
        if self.priority is not None and os.getpriority(os.PRIO_PROCESS, 0) != self.priority:
            try:
                os.setpriority(os.PRIO_PROCESS, 0, self.priority)
            except OSError:
                problems.append("the job lowered the worker's priority (nice), which the worker may not raise again")
        if self.affinity is not None and os.sched_getaffinity(0) != self.affinity:
            os.sched_setaffinity(0, self.affinity)
        if locale.setlocale(locale.LC_ALL, None) != self.locale:
            locale.setlocale(locale.LC_ALL, self.locale)

    def _reset_interpreter(self, problems):
        if sys.gettrace() is not None:
            sys.settrace(None)
        if sys.getprofile() is not None:
            sys.setprofile(None)
        if getattr(threading, "_trace_hook", None) is not None:
            threading.settrace(None)
        if getattr(threading, "_profile_hook", None) is not None:
            threading.setprofile(None)
        if sys.getrecursionlimit() != self.recursion_limit:
            sys.setrecursionlimit(self.recursion_limit)
        if sys.getswitchinterval() != self.switch_interval:
            sys.setswitchinterval(self.switch_interval)
        if self.int_max_str_digits is not None and sys.get_int_max_str_digits() != self.int_max_str_digits:
            sys.set_int_max_str_digits(self.int_max_str_digits)
        if self.dlopenflags is not None and sys.getdlopenflags() != self.dlopenflags:
            sys.setdlopenflags(self.dlopenflags)
        sys.dont_write_bytecode = self.dont_write_bytecode
        for name, value in self.sys_attributes.items():
            if getattr(sys, name, None) is not value:
                setattr(sys, name, value)
        if sys.meta_path != self.meta_path:
            sys.meta_path[:] = self.meta_path
        if sys.path_hooks != self.path_hooks:
            sys.path_hooks[:] = self.path_hooks
            sys.path_importer_cache.clear()  # finders the job's hooks made for path entries
        current = vars(builtins)
        if current != self.builtins:
            for key in [k for k in current if k not in self.builtins]:
                del current[key]
            for key, value in self.builtins.items():
                if current.get(key) is not value:
                    current[key] = value
        if warnings.filters is not self.warnings_filters_list or warnings.filters != self.warnings_filters:
            warnings.filters = self.warnings_filters_list
            warnings.filters[:] = self.warnings_filters
            getattr(warnings, "_filters_mutated", lambda: None)()
        warnings.showwarning, warnings.formatwarning = self.warnings_functions
        enabled, threshold, callbacks = self.gc
        if enabled and not gc.isenabled():
            gc.enable()
        elif not enabled and gc.isenabled():
            gc.disable()
        if gc.get_threshold() != threshold:
            gc.set_threshold(*threshold)
        if gc.callbacks != callbacks:
            gc.callbacks[:] = callbacks

    def _reset_modules(self, problems):
        if socket.getdefaulttimeout() != self.socket_timeout:
            socket.setdefaulttimeout(self.socket_timeout)
        tempfile.tempdir = self.tempdir
        if time.tzname != self.tzname:
            time.tzset()
        random.seed()  # as unpredictable as in a fresh process, whatever seed the job chose

    # ---------------------------------------------------------------- after the job

    def check(self, threads_before):
        """What the job left that cannot be undone in a running process: the reasons to replace
        the worker (empty when it may run the next job)."""
        problems = []
        left = self._threads_left(threads_before)
        if left:
            problems.append("the job left %d thread%s running (%s)" % (len(left), "" if len(left) == 1 else "s",
                                                                       ", ".join(sorted(left))))
        changed = []
        try:
            # Every namespace at once, in C: equality of functions, classes and modules is identity.
            unchanged = list(map(_call, self.getters, self.mappings)) == self.values
        except Exception:
            unchanged = False  # a key was deleted
        if not unchanged:
            for label, getter, mapping, keys, values in self.fingerprints:
                try:
                    now = getter(mapping)
                except Exception:
                    changed.append("%s (deleted)" % label)
                    continue
                if any(map(_is_not, now, values)):
                    names = [k for k, a, b in zip(keys, now, values) if a is not b]
                    changed.append("%s (%s)" % (label, ", ".join(names[:5])))
        if changed:
            problems.append("the job changed %s, which cannot be undone in a running worker" % "; ".join(changed))
        if len(sys.modules) != self.modules_seen:
            patched = self._fingerprint_modules()
            self._index()
            if patched:
                problems.append("the job changed standard modules it imported: %s" % "; ".join(patched))
        return problems

    @staticmethod
    def _threads_left(before):
        """Names of the Python threads started by the job that are still running, after giving
        the ones ending right now 50 ms to do so."""
        left = set(sys._current_frames()) - before
        deadline = _monotonic() + 0.05
        while left and _monotonic() < deadline:
            _sleep(0.005)
            left = set(sys._current_frames()) - before
        if not left:
            return []
        names = {t.ident: t.name for t in threading.enumerate()}
        return [names.get(ident, "thread %d" % ident) for ident in left]


class TempFolder:
    """The worker's private temp folder (TMPDIR, given by the server, which deletes it with the
    process), emptied after each job so that one job's files cannot fill it for the next.
    Blender's own folder inside it (bpy.app.tempdir) is kept, and emptied. Links are deleted,
    never followed; folders a job made unreadable or unwritable are given back to their owner
    first."""

    def __init__(self, path):
        self.path = None
        if path and os.path.isdir(path) and not os.path.islink(path):
            real = os.path.realpath(path)
            if real != os.sep:
                self.path = real
        blender = bpy.app.tempdir.rstrip(os.sep) if bpy.app.tempdir else ""
        self.blender = os.path.realpath(blender) if blender else None

    def empty(self):
        """Returns what could not be deleted (then the worker is replaced, and the server deletes
        the folder with the process)."""
        if self.path is None:
            return []
        problems = []
        self._empty(self.path, problems)
        if self.blender is not None and self.blender.startswith(self.path + os.sep) and not os.path.isdir(self.blender):
            try:
                os.makedirs(self.blender, 0o700)
            except OSError as exc:
                problems.append("could not make Blender's temp folder again: %s" % exc)
        return problems

    def _empty(self, folder, problems):
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            problems.append("could not list the worker's temp folder: %s" % exc)
            return
        for entry in entries:
            try:
                if not entry.is_dir(follow_symlinks=False):
                    os.unlink(entry.path)
                elif entry.path == self.blender:
                    self._empty(entry.path, problems)
                else:
                    _remove_tree(entry.path)
            except OSError as exc:
                problems.append("could not delete %s from the worker's temp folder: %s" % (entry.path, exc))


def _remove_tree(path):
    """Deletes a folder without following links out of it (shutil.rmtree works on descriptors
    where the system allows it). A folder a job made unreadable or unwritable is given back to
    its owner, and the delete tried again."""
    shutil.rmtree(path, ignore_errors=True)
    if not os.path.lexists(path):
        return
    stack = [path]
    while stack:
        folder = stack.pop()
        try:
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                continue
            os.chmod(folder, 0o700)
            stack.extend(e.path for e in os.scandir(folder) if e.is_dir(follow_symlinks=False))
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        raise OSError("it could not be deleted")


# --------------------------------------------------------------------------- one job

class BlenderState:
    """Whether Blender's data is known to be empty, as a fresh process would show it.
    The worker resets eagerly right after each job (off the next job's critical path), or
    keeps the last reset when the job left the data as it found it (DataWatch), and only
    resets again at job start when neither happened. used_clean: the running (or last) job
    started from such a reset."""
    clean = False
    used_clean = False


def reset_blender(blend_file):
    """Bring Blender to the state a fresh process would give the job."""
    BlenderState.used_clean = False
    if not blend_file and BlenderState.clean:
        BlenderState.clean = False
        BlenderState.used_clean = True
        return
    BlenderState.clean = False
    try:
        if blend_file:
            bpy.ops.wm.open_mainfile(filepath=blend_file, load_ui=False)
        else:
            bpy.ops.wm.read_homefile(use_empty=True)
    except Exception as exc:
        if blend_file:
            raise JobFailure("SETUP_FAILED", "could not open the job's blend file %s: %s" % (blend_file, exc))
        raise JobFailure("SETUP_FAILED", "could not reset Blender to empty data: %s" % exc)


def script_traceback(exc):
    """The traceback of a script exception without the runtime's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == RUNTIME_FILE:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


class SavedInterpreterState:
    """What one job may change in the interpreter and must not leak to the next."""

    def __init__(self):
        self.argv = list(sys.argv)
        self.path = list(sys.path)
        self.cwd = os.getcwd()
        self.environ = dict(os.environ)
        self.modules = set(sys.modules)
        self.handlers = {}
        for name in dir(bpy.app.handlers):
            handler_list = getattr(bpy.app.handlers, name)
            if isinstance(handler_list, list):
                self.handlers[name] = list(handler_list)

    def restore(self, job_dirs):
        sys.argv[:] = self.argv
        sys.path[:] = self.path
        try:
            os.chdir(self.cwd)
        except OSError:
            pass
        for key in list(os.environ):
            if key not in self.environ:
                del os.environ[key]
        for key, value in self.environ.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        # Forget modules the job imported from its own folders, so the next job that
        # imports the same name sees its own file; keep library imports (numpy...) warm.
        for name in list(sys.modules):
            if name in self.modules:
                continue
            module_file = getattr(sys.modules.get(name), "__file__", None) or ""
            if any(d and os.path.abspath(module_file).startswith(d + os.sep) for d in job_dirs):
                del sys.modules[name]
        for name, saved in self.handlers.items():
            handler_list = getattr(bpy.app.handlers, name)
            handler_list[:] = saved


def _describe(exc):
    """str(exc), even for an exception whose __str__ itself fails."""
    try:
        return "%s: %s" % (type(exc).__name__, exc)
    except BaseException:
        return type(exc).__name__


def read_inputs(files):
    """The job's source and passedData, from the private copies the server wrote."""
    try:
        with open(files["script"], "r", encoding="utf-8") as f:
            source = f.read()
        with open(files["passedData"], "r", encoding="utf-8") as f:
            passed_data = json.load(f)
    except (OSError, ValueError) as exc:
        raise JobFailure("SETUP_FAILED", "could not read the job's inputs: %s" % _describe(exc))
    if not isinstance(passed_data, dict):
        raise JobFailure("SETUP_FAILED", "the job's passedData is not a JSON object")
    return source, passed_data


class _WatchedBpy(types.ModuleType):
    """Stands for the bpy module while a script runs, to learn whether the script used it:
    every attribute is the real module's, and the first use records it and puts the real
    module back (in sys.modules and the script's globals), so a script that uses bpy pays for
    the watch once."""

    def __init__(self, real, touched):
        types.ModuleType.__init__(self, real.__name__, real.__doc__)
        object.__setattr__(self, "_watch", (real, touched))

    def __getattr__(self, name):
        real, touched = object.__getattribute__(self, "_watch")
        touched()
        return getattr(real, name)

    def __setattr__(self, name, value):
        real, touched = object.__getattribute__(self, "_watch")
        touched()
        setattr(real, name, value)

    def __dir__(self):
        return dir(object.__getattribute__(self, "_watch")[0])


class DataWatch:
    """Whether a job may have changed Blender's data, so that the reset after it (about 4 ms,
    read_homefile) is skipped only when it provably has nothing to undo. The check is cheap and
    errs on the side of resetting: a job is taken to have changed Blender's data when it was
    given a blendFile or passedDataBlocks, when its script used the bpy module at all (bpy, or
    anything from it: bpy.data, bpy.context, bpy.ops...; _WatchedBpy notices the first use),
    or when the set of data blocks differs from the one the last reset left (ids made another
    way, e.g. by a module that holds bpy itself). A script that reaches Blender's data only
    through _bpy or ctypes is not seen: such a script should ask for isolation: "process". As a
    last net, when the script did not use bpy, Blender's dependency graph is evaluated: a change
    to a data block's settings made another way (say through a module that imported bpy before
    the job) tags it for an update, which depsgraph_update_post reports."""

    def __init__(self):
        self.collections = [p.identifier for p in bpy.data.bl_rna.properties if p.type == "COLLECTION"]
        self.clean = None  # the data blocks right after the last reset
        self.used = False
        self.updated = False
        watch = self

        @bpy.app.handlers.persistent
        def blender_jobs_data_updated(*_args):
            watch.updated = True

        bpy.app.handlers.depsgraph_update_post.append(blender_jobs_data_updated)

    def fingerprint(self):
        data = bpy.data
        return tuple(tuple(block.as_pointer() for block in getattr(data, name)) for name in self.collections)

    def after_reset(self):
        self.clean = self.fingerprint()

    def watch(self, namespace):
        """Puts the watched bpy in place for the script; call restore() when it ends."""
        self.used = False
        self.updated = False
        real = sys.modules["bpy"]

        def touched():
            if not self.used:
                self.used = True
                sys.modules["bpy"] = real
                if namespace.get("bpy") is watched:
                    namespace["bpy"] = real

        watched = _WatchedBpy(real, touched)
        sys.modules["bpy"] = watched
        namespace["bpy"] = watched
        self.real = real

    def restore(self):
        sys.modules["bpy"] = self.real

    def unchanged(self, files):
        """True when the job that just ran left Blender's data as the last reset did."""
        if self.used or files.get("library") or files.get("blendFile") or self.clean is None:
            return False
        if self.fingerprint() != self.clean:
            return False
        try:
            bpy.context.evaluated_depsgraph_get()  # runs depsgraph_update_post if anything was tagged
        except Exception:
            return False
        return not self.updated


class Worker:
    """What the job loop works with; made once, in main()."""

    def __init__(self, channel, reporter, output, supervisor, temp, baseline):
        self.channel = channel
        self.reporter = reporter
        self.output = output
        self.supervisor = supervisor
        self.temp = temp
        self.baseline = baseline
        self.problems = []  # what the reset of the running job could not undo
        self.data = DataWatch()
        self.data_unchanged = False  # the last job left Blender's data as the reset before it


def run_job(message, worker):
    """Run one attempt; returns its outcome message (completed or failed)."""
    job_id = message["jobId"]
    spec = message["spec"]
    files = message["files"]
    script_path = spec.get("script") if isinstance(spec.get("script"), str) else None
    script_name = script_path or "<scriptText>"
    work_dir = files["workDir"]
    result_dir = files["resultDir"]
    saved = SavedInterpreterState()
    script_dir = os.path.dirname(os.path.abspath(script_path)) if script_path else None
    timing = {}
    outcome = None
    update_job_progress = worker.reporter.begin(job_id)
    worker.output.begin(job_id)
    try:
        started = time.perf_counter()
        # A retry never sees an earlier attempt's results.
        clear_directory(result_dir, keep=("python_data.json.tmp",))
        source, passed_data = read_inputs(files)
        reset_blender(files.get("blendFile"))
        passed_blocks = []
        if files.get("library"):
            blocks_spec = spec.get("passedDataBlocks") or {}
            passed_blocks = append_passed_blocks(files["library"], blocks_spec.get("names"))
        namespace = {
            "__name__": "__main__",
            "__file__": script_name,
            "__builtins__": builtins,
            "bpy": bpy,
        }
        for key, value in passed_data.items():
            if key.isidentifier():
                namespace[key] = value
        namespace["passed_data"] = passed_data
        namespace["passed_data_blocks"] = passed_blocks
        namespace["python_data"] = {}
        namespace["data_blocks"] = []
        namespace["update_job_progress"] = update_job_progress
        ensure_directory(work_dir)
        os.chdir(work_dir)
        sys.argv[:] = [script_name]
        if script_dir:
            sys.path.insert(0, script_dir)
        code = compile(source, script_name, "exec")
        timing["setupMs"] = round((time.perf_counter() - started) * 1000, 3)

        started = time.perf_counter()
        worker.data.watch(namespace)
        try:
            exec(code, namespace)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise JobFailure("SCRIPT_EXITED",
                                 "the script called sys.exit(%r) before finishing" % (exc.code,))
        finally:
            worker.data.restore()
            timing["scriptMs"] = round((time.perf_counter() - started) * 1000, 3)
            # First of all: the results are collected, and the next job runs, in the interpreter
            # the worker started with (no alarm pending, the umask, builtins, hooks... as they were).
            reset_started = time.perf_counter()
            worker.problems.extend(worker.baseline.reset())
            timing["resetMs"] = round((time.perf_counter() - reset_started) * 1000, 3)

        started = time.perf_counter()
        python_data = namespace.get("python_data")
        encoded = b"{}" if python_data is None else encode_python_data(python_data)
        try:
            size, sha = write_result_atomically(encoded, os.path.join(result_dir, "python_data.json"))
            blocks = write_data_blocks(namespace.get("data_blocks"),
                                       os.path.join(result_dir, "data_blocks.blend"))
        except (OSError, RuntimeError) as exc:
            # Disk full or the directory unwritable: say so, not "the script raised".
            # (bpy.data.libraries.write reports a failed write as RuntimeError.)
            raise JobFailure("RESULT_WRITE_FAILED",
                             "the job's results could not be written to %s: %s. Free disk space, or "
                             "start the server with a --state-dir on a disk with room"
                             % (result_dir, exc))
        timing["collectMs"] = round((time.perf_counter() - started) * 1000, 3)
        outcome = {"type": "completed", "jobId": job_id, "pythonDataBytes": size, "pythonDataSha256": sha,
                   "dataBlocks": blocks, "timing": timing}
    except JobFailure as failure:
        outcome = {"type": "failed", "jobId": job_id, "kind": failure.kind, "message": failure.message}
    except SyntaxError as exc:
        outcome = {"type": "failed", "jobId": job_id, "kind": "SCRIPT_ERROR",
                   "message": "the script has a syntax error: %s (line %s)" % (exc.msg, exc.lineno),
                   "traceback": "".join(traceback.format_exception_only(type(exc), exc))}
    except BaseException as exc:
        outcome = {"type": "failed", "jobId": job_id, "kind": "SCRIPT_ERROR",
                   "message": "the script raised %s" % _describe(exc),
                   "traceback": script_traceback(exc)}
    finally:
        worker.data_unchanged = worker.data.unchanged(files)
        # Processes the script started die with the job, not with the worker (the guard stays).
        kill_descendants(exclude=worker.supervisor.keep())
        saved.restore([d for d in (script_dir, os.path.abspath(work_dir)) if d])
        worker.output.end(job_id)
        worker.reporter.end()
    if outcome.get("dataBlocks") is None:
        outcome.pop("dataBlocks", None)
    return outcome


def clean_up_after(worker, threads_before):
    """After a job's outcome has gone out (off its path): what the job left that cannot be
    undone, which means the worker must be replaced; when there is none, the temp folder is
    emptied and Blender reset to empty data for the next job. Returns the reasons to replace the
    worker (empty when it may take the next job)."""
    problems = worker.problems
    worker.problems = []
    problems.extend(worker.baseline.check(threads_before))
    if worker.supervisor.guard_lost():
        problems.append("the job killed the worker's guard process")
    if not problems:  # a worker being replaced has its temp folder deleted by the server
        problems.extend(worker.temp.empty())
    if not problems:
        if worker.data_unchanged and BlenderState.used_clean:
            # The job found Blender reset and left its data as it was: the reset is still good.
            BlenderState.clean = True
        else:
            eager_reset(worker.data)
    return problems
# --------------------------------------------------------------------------- remote workers

class Staging:
    """Job files of a worker that does not share the server's disk (a pilot on a cluster node).
    The server streams each job's inputs as "file" chunks, written here as <base>/input/<jobId>.<file>;
    its run names relative paths, resolved here: the inputs, and folders <base>/work (the script's
    current directory) and <base>/result, which are the same for every job of this worker and
    emptied after each (creating and removing a folder tree per job costs milliseconds on some
    filesystems; emptying two folders costs microseconds). The results go back as "result" chunks
    before the outcome. Nothing of a job is kept on the node after it."""

    def __init__(self, base):
        self.base = os.path.abspath(base)
        self.input = os.path.join(self.base, "input")
        self.work = os.path.join(self.base, "work")
        self.result = os.path.join(self.base, "result")
        for folder in (self.input, self.work, self.result):
            os.makedirs(folder, exist_ok=True)
        self.lock = threading.Lock()
        self.complete = set()  # (jobId, name) of inputs whose last chunk arrived
        self.failed = set()  # (jobId, name) of inputs the node could not store (disk full...)
        self.open_files = {}  # (jobId, name) -> (file, bytes written)

    def input_path(self, job_id, name):
        if not valid_job_id(job_id):
            raise ProtocolError("the server sent a job id %r" % (job_id,))
        return os.path.join(self.input, "%s.%s" % (job_id, INPUT_FILES[name]))

    def write_chunk(self, message):
        """On the inbox thread: append one chunk; chunks of a file come in order, without gaps."""
        key = (message["jobId"], message["name"])
        path = self.input_path(message["jobId"], message["name"])
        with self.lock:
            if message["offset"] == 0:
                self._close(key)
                self.complete.discard(key)
                self.failed.discard(key)
                try:
                    self.open_files[key] = (open(path, "wb"), 0)
                except OSError as exc:
                    self._fail(key, path, exc)
            if key in self.failed:
                return  # the node could not store it: the job fails with SETUP_FAILED, the worker goes on
            entry = self.open_files.get(key)
            if entry is None or entry[1] != message["offset"]:
                raise ProtocolError("the server sent a chunk of %s at offset %d out of order"
                                    % (message["name"], message["offset"]))
            f, written = entry
            try:
                f.write(message["data"])
                if message["last"]:
                    f.close()
            except OSError as exc:
                self._fail(key, path, exc)
                return
            self.open_files[key] = (f, written + len(message["data"]))
            if message["last"]:
                self._close(key)
                self.complete.add(key)

    def _fail(self, key, path, exc):
        self._close(key)
        self.failed.add(key)
        sys.__stderr__.write("blender-jobs worker: could not store the job's input %s: %s\n" % (path, exc))
        try:
            os.remove(path)
        except OSError:
            pass

    def _close(self, key):
        entry = self.open_files.pop(key, None)
        if entry is not None:
            try:
                entry[0].close()
            except OSError:
                pass

    def localize(self, message):
        """The run message with its paths resolved here. The server names relative paths only;
        an input whose last chunk never arrived is treated as missing (SETUP_FAILED)."""
        job_id = message["jobId"]
        files = dict(message["files"])
        for field, value in files.items():
            if value is not None and (not value or os.path.isabs(value) or ".." in value.replace("\\", "/").split("/")):
                raise ProtocolError("the server sent a run whose %s is %r, not a path inside the job's folder"
                                    % (field, value))
        with self.lock:
            for name in INPUT_FILES:
                if files.get(name) is not None:
                    path = self.input_path(job_id, name)
                    files[name] = path if (job_id, name) in self.complete else path + ".incomplete"
        files["workDir"] = self.work
        files["resultDir"] = self.result
        localized = dict(message)
        localized["files"] = files
        return localized

    def send_results(self, channel, job_id, outcome):
        """Stream the result files to the server in chunks (one chunk of memory at a time), then
        the outcome; small results go out with the outcome in one write."""
        pending = []  # frames not sent yet, at most about one chunk
        for name, filename in RESULT_FILES:
            path = os.path.join(self.result, filename)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            with open(path, "rb") as f:
                left = os.fstat(f.fileno()).st_size
                offset = 0
                while True:
                    data = f.read(min(left, CHUNK_BYTES))
                    left -= len(data)
                    last = left <= 0 or len(data) == 0
                    if pending and sum(len(p) for p in pending) + len(data) > CHUNK_BYTES:
                        channel.send_frames(pending)
                        pending = []
                    pending.append(encode_binary({"type": "result", "jobId": job_id, "name": name,
                                                  "offset": offset, "last": last}, data))
                    offset += len(data)
                    if last:
                        break
        pending.append(encode(outcome))
        channel.send_frames(pending)

    def cleanup(self, job_id):
        """Forget the job: its inputs, and whatever it left in the work and result folders. Returns
        what could not be deleted: the worker is then replaced (idle with recycle), since the next
        job would find this one's files in the folders it reuses."""
        problems = []
        with self.lock:
            for key in [k for k in self.open_files if k[0] == job_id]:
                self._close(key)
            self.complete = set(k for k in self.complete if k[0] != job_id)
            self.failed = set(k for k in self.failed if k[0] != job_id)
        prefix = job_id + "."
        for folder, only_job in ((self.input, True), (self.work, False), (self.result, False)):
            try:
                entries = os.listdir(folder)
            except OSError:
                os.makedirs(folder, exist_ok=True)
                continue
            for entry in entries:
                if only_job and not entry.startswith(prefix):
                    continue  # not this job's (the server sends the next job's inputs only after idle)
                full = os.path.join(folder, entry)
                try:
                    if os.path.isdir(full) and not os.path.islink(full):
                        _remove_tree(full)  # links not followed; folders made unreadable opened first
                    else:
                        os.remove(full)
                except OSError as exc:
                    problems.append("could not delete %s from the pilot's job folders: %s" % (printable(full), exc))
        return problems


class ConsoleForwarder:
    """The console of a worker whose stdout is not a pipe to the server: file descriptors 1 and
    2 become a pipe, whose bytes go to the server as "console" chunks of the job running when
    they were read, or without a job outside one. Blender's own prints and a script's child
    processes land here too, as they would in a local worker's pipe.

    No markers are needed: the runtime itself drains the pipe where a job begins and where it
    ends (holding the lock, so nothing is read twice or out of order), and a thread forwards
    whatever arrives in between. A job that prints nothing costs no thread switch at all."""

    def __init__(self, channel):
        self.channel = channel
        self.current = None
        self.lock = threading.Lock()
        read_end, write_end = os.pipe()
        flush_quietly(sys.stdout, sys.stderr)
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        os.close(write_end)
        os.set_blocking(read_end, False)
        self.read_end = read_end
        thread = threading.Thread(target=self._run, name="blender-jobs-console", daemon=True)
        thread.start()

    def begin(self, job_id):
        with self.lock:
            self._drain()
            self.current = job_id

    def end(self, job_id):
        """Everything the job printed is sent when this returns (before its outcome)."""
        with self.lock:
            self._drain()
            self.current = None

    def _drain(self):
        """Send what the pipe holds; False once it is closed. Called with the lock held."""
        while True:
            try:
                chunk = os.read(self.read_end, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            message = {"type": "console"}
            if self.current is not None:
                message["jobId"] = self.current
            self.channel.send_binary(message, chunk)

    def _run(self):
        import select
        poller = select.poll()
        poller.register(self.read_end, select.POLLIN)
        try:
            while True:
                poller.poll()
                with self.lock:
                    if not self._drain():
                        return
        except Exception:
            pass  # the channel is gone: the inbox thread ends the worker


# --------------------------------------------------------------------------- main loop

def eager_reset(data=None):
    """Empty Blender's data while waiting for the next job, so that a job arriving at an
    idle worker does not pay for the reset (about 4 ms on a small machine)."""
    try:
        bpy.ops.wm.read_homefile(use_empty=True)
        BlenderState.clean = True
        if data is not None:
            data.after_reset()
    except Exception:
        BlenderState.clean = False


def enable_keepalive(sock):
    """A pilot on another machine notices a server that vanished from the network (no FIN ever
    comes) within about a minute, and exits by itself."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    except OSError:
        pass


def main():
    host = os.environ.pop("BLENDER_JOBS_HOST", "127.0.0.1")
    port = int(os.environ.pop("BLENDER_JOBS_PORT"))
    secret = os.environ.pop("BLENDER_JOBS_SECRET")
    marker = os.environ.pop("BLENDER_JOBS_MARKER")
    worker_id = os.environ.pop("BLENDER_JOBS_WORKER", "?")
    interval = float(os.environ.pop("BLENDER_JOBS_PROGRESS_INTERVAL_MS", "10")) / 1000.0
    # stdin is the lifeline (a pipe the server holds open) when the launcher says so. A pilot has
    # no such pipe (its stdin is /dev/null): its lifeline is its channel (the inbox thread below).
    lifeline = os.environ.pop("BLENDER_JOBS_LIFELINE", "") == "stdin"
    # The process's private temp folder, which the runtime empties after each job.
    temp_dir = os.environ.pop("BLENDER_JOBS_TMPDIR", None)
    # A pilot on a cluster node: its console goes over the channel, its job files too.
    console_mode = os.environ.pop("BLENDER_JOBS_CONSOLE", "pipe")
    stage_dir = os.environ.pop("BLENDER_JOBS_STAGE_DIR", None)

    supervisor = Supervisor()
    supervisor.start(lifeline)
    eager_reset()  # before saying hello: Blender starts with the default cube scene
    sock = socket.create_connection((host, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if console_mode == "channel":
        enable_keepalive(sock)
    channel = Channel(sock)
    try:
        handshake(channel, worker_id, secret)
    except ProtocolError as exc:
        sys.stderr.write("blender-jobs worker %s: %s\n" % (worker_id, exc))
        sys.stderr.flush()
        supervisor.die(3)
    sock.settimeout(None)
    forwarder = ConsoleForwarder(channel) if console_mode == "channel" else None
    staging = Staging(stage_dir) if stage_dir else None
    inbox = start_inbox(channel, supervisor, staging)
    reporter = ProgressReporter(channel, interval)
    output = OutputAttribution(marker, forwarder)
    tempfile.gettempdir()  # tempfile's folder is the private one from now on, for every job
    temp = TempFolder(temp_dir)
    # Last: what every job must find is the state once all of the runtime is set up.
    worker = Worker(channel, reporter, output, supervisor, temp, InterpreterBaseline(globals()))
    worker.data.after_reset()  # the data eager_reset() left before hello

    while True:
        message = inbox.get()
        kind = message["type"]
        if kind == "shutdown":
            break
        if kind == "run":
            job_id = message["jobId"]
            # Taken: the server kills a worker that does not say so within seconds of a run (for a
            # pilot, of the run reaching it: its input files came before it and are on disk now).
            channel.send({"type": "started", "jobId": job_id})
            threads_before = set(sys._current_frames())
            try:
                if staging is not None:
                    message = staging.localize(message)
                outcome = run_job(message, worker)
            except BaseException as exc:  # the runtime itself failed: report, never hang
                outcome = {"type": "failed", "jobId": job_id, "kind": "WORKER_ERROR",
                           "message": "the worker runtime failed: %s" % _describe(exc),
                           "traceback": traceback.format_exc()}
            if staging is not None and outcome["type"] == "completed":
                staging.send_results(channel, job_id, outcome)  # the result files, then the outcome
            else:
                channel.send(outcome)
            # Free again only once cleaned up; the server waits for this before the next run.
            problems = staging.cleanup(job_id) if staging is not None else []  # a pilot's job folders
            problems.extend(clean_up_after(worker, threads_before))
            idle = {"type": "idle"}
            if problems:
                idle["recycle"] = "; ".join(problems)
            channel.send(idle)
        else:
            sys.stderr.write("blender-jobs worker %s: the server sent %r after the handshake; exiting\n"
                             % (worker_id, kind))
            break
    flush_quietly(sys.stdout, sys.stderr)
    sock.close()
    # The guard and anything a job may have left die first; then exit at once, without waiting
    # for threads a job may have left (Python would join them at exit, forever for some).
    supervisor.die(0)


main()
