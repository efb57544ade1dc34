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
#   worker -> server: hello, progress, completed, failed; console, result (binary)
# A binary frame's length word has the top bit set; its body is a 4-byte header length, the JSON
# header (the message) and raw bytes. They carry files and console output for a worker that does
# not share the server's disk (a pilot on a cluster node: BLENDER_JOBS_STAGE_DIR and
# BLENDER_JOBS_CONSOLE=channel, set by its batch script).
# encode() and decode() below are this side's one codec; the server's twin is ChannelCodec.java.
#
# Console output of each job is attributed to it by marker lines written to the process's
# stdout (merged with stderr by the server) right before and after the job:
#   <RS><marker>:begin:<jobId><RS>\n  and  <RS><marker>:end:<jobId><RS>\n
# The marker is a per-process nonce, removed from the environment before any job runs.

import builtins
import hashlib
import hmac
import io
import json
import math
import os
import queue
import signal
import socket
import struct
import sys
import threading
import time
import traceback

import bpy

RUNTIME_VERSION = "0.2.0"  # the blender-jobs version this runtime ships with (checked by a unit test)
PROTOCOL = 3  # the channel protocol version (ChannelCodec.PROTOCOL on the server)
RUNTIME_FILE = os.path.abspath(__file__) if "__file__" in globals() else "worker_runtime.py"
# Longest texts a failure message may carry; the server refuses longer ones.
MAX_MESSAGE_CHARS = 64 * 1024
MAX_TRACEBACK_CHARS = 1024 * 1024
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


def encode(message):
    """One frame for a worker -> server message (hello, progress, completed, failed)."""
    kind = message.get("type")
    if kind == "failed":
        message["message"] = _clip(message["message"], MAX_MESSAGE_CHARS)
        if message.get("traceback") is not None:
            message["traceback"] = _clip(message["traceback"], MAX_TRACEBACK_CHARS)
    elif kind not in ("hello", "progress", "completed"):
        raise ValueError("not a worker message: %r" % (kind,))
    # ensure_ascii: a lone surrogate (os.listdir of a non-UTF-8 name) must never break a frame.
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
    """A server -> worker message, checked field by field (challenge, welcome, refused, run, shutdown)."""
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
            return decode(body)
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


def _children_by_task(pid):
    """Direct children of a process from /proc/PID/task/*/children (cheap: a few small
    files), or None where the kernel does not offer it."""
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return None
    children = []
    for task in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, task), "rb") as f:
                children.extend(int(x) for x in f.read().split())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            pass
    return children


def _children_by_scan():
    """ppid -> children for every process, by reading /proc/*/stat (slower fallback)."""
    children = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return children
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                stat = f.read().decode("ascii", "replace")
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        except (OSError, ValueError):
            pass
    return children


def kill_descendants():
    """Kill every process this worker started, and reap its direct children, so that nothing
    a script started outlives its job (Linux /proc; elsewhere the server kills process trees
    on timeout, cancel and exit)."""
    me = os.getpid()
    direct = _children_by_task(me)
    if direct is not None and not direct:
        return  # the common case: the job started nothing
    scan = None
    if direct is None:
        scan = _children_by_scan()
        direct = scan.get(me, [])
        if not direct:
            return
    victims, stack = [], list(direct)
    while stack:
        pid = stack.pop()
        victims.append(pid)
        below = scan.get(pid, []) if scan is not None else (_children_by_task(pid) or [])
        stack.extend(below)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 1.0
    pending = set(direct)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            except OSError:
                done = pid
            if done:
                pending.discard(pid)
        if pending:
            time.sleep(0.005)


def start_inbox(channel, staging=None):
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
        kill_descendants()
        os._exit(0)

    thread = threading.Thread(target=reader, name="blender-jobs-inbox", daemon=True)
    thread.start()
    return inbox


# --------------------------------------------------------------------------- progress

class ProgressReporter:
    """Coalesces update_job_progress calls on the worker side: the first report after a quiet
    period is sent at once, later ones at most every `interval` seconds, and the last value
    always goes out (from the flusher thread, or before the job's result).

    The calling thread takes no lock unless it sends: it stores the latest value as one tuple
    (an atomic store under the GIL) and bumps a counter, so a script calling this 100,000
    times pays about a microsecond per call."""

    def __init__(self, channel, interval):
        self.channel = channel
        self.interval = interval
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.job_id = None
        self.latest = None
        self.seq = 0
        self.sent_seq = 0
        self.next_send = 0.0
        self.flush_pending = False
        thread = threading.Thread(target=self._flusher, name="blender-jobs-progress", daemon=True)
        thread.start()

    def begin(self, job_id):
        with self.lock:
            self.job_id = job_id
            self.latest = None
            self.seq = 0
            self.sent_seq = 0
            self.next_send = 0.0

    def report(self, fraction, message=None):
        kind = type(fraction)
        if kind is not float and kind is not int:
            if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
                raise TypeError("update_job_progress expects a number from 0.0 to 1.0, got %r" % (fraction,))
        fraction = float(fraction)
        if fraction != fraction:
            raise ValueError("update_job_progress got NaN; pass a number from 0.0 to 1.0")
        if fraction < 0.0:
            fraction = 0.0
        elif fraction > 1.0:
            fraction = 1.0
        if message is not None:
            message = str(message)[:1000]
        self.latest = (fraction, message, time.time())
        self.seq += 1
        if time.monotonic() >= self.next_send:
            with self.lock:
                self._send_latest()
        elif not self.flush_pending:
            self.flush_pending = True
            self.wake.set()

    def end(self):
        """Send the last value not yet sent (before the result goes out) and stop reporting."""
        with self.lock:
            self._send_latest()
            self.job_id = None
            self.latest = None

    def _send_latest(self):
        # Called with self.lock held.
        if self.job_id is None or self.seq == self.sent_seq or self.latest is None:
            return
        seq = self.seq
        fraction, message, wall_time = self.latest
        msg = {"type": "progress", "jobId": self.job_id, "progress": fraction,
               "reportedAt": int(wall_time * 1000)}
        if message is not None:
            msg["message"] = message
        self.channel.send(msg)
        self.sent_seq = seq
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
        for stream in self.streams:
            try:
                stream.close()
            except Exception:
                pass
        if self.saved is not None:
            sys.stdout, sys.stderr = self.saved
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
    listing = {}
    unique = []
    seen = set()  # a set, not "name in list": 100,000 blocks must not take quadratic time
    for index, block in enumerate(blocks):
        if not isinstance(block, bpy.types.ID):
            raise JobFailure("RESULT_NOT_SERIALIZABLE",
                             "data_blocks[%d] is a %s, not a Blender data block (bpy.types.ID)"
                             % (index, type(block).__name__))
        kind = collection_name_of(block, mapping)
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
                                 "%s has a key of type %s; JSON object keys must be strings"
                                 % (path, type(key).__name__))
            if isinstance(key, str):
                _check_unicode(key, "a key of " + path)
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


def encode_python_data(value):
    """python_data as UTF-8 JSON bytes. json.dumps does the common case at C speed; only when
    it refuses a value (or the text is not valid Unicode) does the recursive to_json walk run,
    to name the offending key path."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                          default=_json_default).encode("utf-8")
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
    which the server checks before it trusts or serves the file."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)  # a half-written file is never left behind
        except OSError:
            pass
        raise
    return len(data), hashlib.sha256(data).hexdigest()


def clear_directory(path):
    """Empty a folder the runtime owns (results of an earlier attempt), keeping the folder."""
    os.makedirs(path, exist_ok=True)
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        try:
            if os.path.isdir(full) and not os.path.islink(full):
                import shutil
                shutil.rmtree(full, ignore_errors=True)
            else:
                os.remove(full)
        except OSError:
            pass


# --------------------------------------------------------------------------- one job

class BlenderState:
    """Whether Blender's data is known to be empty, as a fresh process would show it.
    The worker resets eagerly right after each job (off the next job's critical path) and
    only resets again at job start when that did not happen."""
    clean = False


def reset_blender(blend_file):
    """Bring Blender to the state a fresh process would give the job."""
    if not blend_file and BlenderState.clean:
        BlenderState.clean = False
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


def run_job(message, reporter, output):
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
    reporter.begin(job_id)
    output.begin(job_id)
    try:
        started = time.perf_counter()
        clear_directory(result_dir)  # a retry never sees an earlier attempt's results
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
        namespace["update_job_progress"] = reporter.report
        os.makedirs(work_dir, exist_ok=True)
        os.chdir(work_dir)
        sys.argv[:] = [script_name]
        if script_dir:
            sys.path.insert(0, script_dir)
        code = compile(source, script_name, "exec")
        timing["setupMs"] = round((time.perf_counter() - started) * 1000, 3)

        started = time.perf_counter()
        try:
            exec(code, namespace)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise JobFailure("SCRIPT_EXITED",
                                 "the script called sys.exit(%r) before finishing" % (exc.code,))
        timing["scriptMs"] = round((time.perf_counter() - started) * 1000, 3)

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
        # Processes the script started die with the job, not with the worker.
        kill_descendants()
        saved.restore([d for d in (script_dir, os.path.abspath(work_dir)) if d])
        output.end(job_id)
        reporter.end()
    if outcome.get("dataBlocks") is None:
        outcome.pop("dataBlocks", None)
    return outcome


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
        """Forget the job: its inputs, and whatever it left in the work and result folders."""
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
                    continue  # the next job's inputs may be arriving already
                full = os.path.join(folder, entry)
                try:
                    if os.path.isdir(full) and not os.path.islink(full):
                        import shutil
                        shutil.rmtree(full, ignore_errors=True)
                    else:
                        os.remove(full)
                except OSError:
                    pass


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

def eager_reset():
    """Empty Blender's data while waiting for the next job, so that a job arriving at an
    idle worker does not pay for the reset (about 8 ms on a small machine)."""
    try:
        bpy.ops.wm.read_homefile(use_empty=True)
        BlenderState.clean = True
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
    # A pilot on a cluster node: its console goes over the channel, its job files too.
    console_mode = os.environ.pop("BLENDER_JOBS_CONSOLE", "pipe")
    stage_dir = os.environ.pop("BLENDER_JOBS_STAGE_DIR", None)

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
        os._exit(3)
    sock.settimeout(None)
    forwarder = ConsoleForwarder(channel) if console_mode == "channel" else None
    staging = Staging(stage_dir) if stage_dir else None
    inbox = start_inbox(channel, staging)
    reporter = ProgressReporter(channel, interval)
    output = OutputAttribution(marker, forwarder)

    while True:
        message = inbox.get()
        kind = message["type"]
        if kind == "shutdown":
            break
        if kind == "run":
            job_id = message["jobId"]
            try:
                if staging is not None:
                    message = staging.localize(message)
                outcome = run_job(message, reporter, output)
            except BaseException as exc:  # the runtime itself failed: report, never hang
                outcome = {"type": "failed", "jobId": job_id, "kind": "WORKER_ERROR",
                           "message": "the worker runtime failed: %s" % _describe(exc),
                           "traceback": traceback.format_exc()}
            if staging is not None and outcome["type"] == "completed":
                staging.send_results(channel, job_id, outcome)
            else:
                channel.send(outcome)
            if staging is not None:
                staging.cleanup(job_id)  # after the outcome: off the job's critical path
            eager_reset()
        else:
            sys.stderr.write("blender-jobs worker %s: the server sent %r after the handshake; exiting\n"
                             % (worker_id, kind))
            break
    flush_quietly(sys.stdout, sys.stderr)
    sock.close()


main()
