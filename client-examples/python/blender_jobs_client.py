"""A Python client for the blender-jobs server.

The server (``blender-jobs-server.jar``) runs Blender Python scripts in a pool of headless
Blender workers and speaks JSON-RPC 2.0 over its stdin/stdout, framed like the LSP base
protocol (``Content-Length: N\\r\\n\\r\\n<json>``). This module starts the server as a child
process and talks to it::

    from blender_jobs_client import BlenderJobsClient

    with BlenderJobsClient(server_args=["--workers", "2"]) as client:
        job = client.add_job(script_text="python_data = {'answer': 6 * 7}")
        final = client.wait_for_job(job["jobId"], timeout=120)
        print(final["state"], client.get_python_data(job["jobId"]))

Jobs outlive the server when it has a persistent state directory (``workspace=`` or
``state_dir=``): ``close()`` (``shutdown``) leaves unfinished jobs INTERRUPTED, and a client of a
later server on the same directory lists them and runs them again with ``resume_job`` /
``resume_all``. ``wait_for_job`` returns on any resting state (:data:`RESTING_STATES`: the final
states and INTERRUPTED), so it never hangs across a shutdown.

Standard library only; runs on Python 3.9+ (including the Python bundled with Blender 2.93 and later).

Threads: one reader thread (parses server output, completes requests), one dispatcher thread
(runs notification callbacks, in the order the server sent the notifications), one thread
draining the server's stderr and one watching the process. Callbacks may call requests of the
client, but must not call :meth:`BlenderJobsClient.wait_for_job` (that would wait for the very
thread it runs on; it raises ``RuntimeError`` instead).
"""

import collections
import itertools
import json
import logging
import os
import pathlib
import queue
import re
import shlex
import shutil
import subprocess
import threading
import time
import urllib.parse

__all__ = [
    "BlenderJobsClient", "default_jar_path", "find_server", "ServerLocation", "ServerNotFound",
    "BlenderJobsError", "ProtocolError", "RequestTimeout", "JobWaitTimeout", "ServerExited",
    "JsonRpcError", "ParseError", "InvalidRequest", "MethodNotFound", "InvalidParams", "InternalError",
    "ServerNotInitialized", "JobNotFound", "JobNotFinished", "JobFailed", "JobCanceled",
    "JobNotRemovable", "JobInterrupted", "JobNotResumable", "BlenderUnavailable", "ShuttingDown",
    "JobFilesUnavailable",
    "FINAL_STATES", "RESTING_STATES", "JOB_STATES", "FAILURE_KINDS", "WORKER_STATES", "workspace_uri",
]

__version__ = "0.2.0"

LOG = logging.getLogger("blender_jobs_client")

#: Every job state (protocol.md §2).
JOB_STATES = ("QUEUED", "ACTIVE", "COMPLETED", "FAILED", "CANCELED", "INTERRUPTED")
#: The final states: a job in one of them never changes state again.
FINAL_STATES = frozenset(("COMPLETED", "FAILED", "CANCELED"))
#: The states a job rests in: nothing more happens to it unless a client acts. The final states
#: plus INTERRUPTED (the server stopped while the job was queued or running; ``resume_job`` queues
#: it again, ``cancel_job`` makes it CANCELED). :meth:`BlenderJobsClient.wait_for_job` returns on
#: any of them, so a wait never hangs across a ``shutdown``.
RESTING_STATES = FINAL_STATES | frozenset(("INTERRUPTED",))
#: Every ``ErrorInfo.kind`` / ``data.failureKind`` (protocol.md §5). INTERRUPTED is not a failure
#: of the job: it is the kind of the error of an INTERRUPTED job.
FAILURE_KINDS = ("SCRIPT_ERROR", "SCRIPT_EXITED", "TIMED_OUT", "BLENDER_CRASHED", "BLENDER_EXITED",
                 "RESULT_NOT_SERIALIZABLE", "RESULT_WRITE_FAILED", "SETUP_FAILED", "WORKER_START_FAILED",
                 "WORKER_ERROR", "PROTOCOL_VIOLATION", "INTERRUPTED", "WORKER_LOST")
#: Every ``getStats.workerDetails[].state`` (protocol.md, getStats).
WORKER_STATES = ("STARTING", "IDLE", "BUSY", "WAITING_TO_RESTART", "SHUT_DOWN")

_HERE = os.path.dirname(os.path.abspath(__file__))
#: The checkout this module sits in when it is used from one (client-examples/python/).
_OWN_CHECKOUT = os.path.normpath(os.path.join(_HERE, "..", ".."))
_DEFAULT_JAR = os.path.join(_OWN_CHECKOUT, "server", "target", "blender-jobs-server.jar")
#: The environment variable that names the server: a command line, e.g. the launcher's path.
SERVER_ENV = "BLENDER_JOBS_SERVER"
#: The launcher's name, looked up on PATH.
SERVER_COMMAND = "blender-jobs-server"
_MAX_HEADER_BYTES = 8192
_FINAL_CACHE_SIZE = 10000
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def workspace_uri(workspace):
    """The URI ``initialize`` names a workspace with: a ``file://`` URI of the absolute folder for a
    path, a string that already is a URI (``file:///...``, ``vscode-remote://...``) unchanged."""
    workspace = os.fspath(workspace)
    if _URI.match(workspace):  # (a one-letter "scheme" would be a Windows drive: a path)
        return workspace
    return pathlib.Path(os.path.abspath(workspace)).as_uri()


def default_jar_path():
    """$BLENDER_JOBS_JAR, else the build output ``../../server/target/blender-jobs-server.jar``
    relative to this module (a checkout). The tests use it to find the jar they run; clients find
    the server with :func:`find_server`."""
    return os.environ.get("BLENDER_JOBS_JAR") or _DEFAULT_JAR


class ServerLocation(object):
    """How to start the server: ``command`` (an argument list, e.g. the launcher
    ``bin/blender-jobs-server``, to which server flags are appended) or ``jar`` (run with java and
    :data:`JVM_OPTIONS`), and ``source``: where it was found (for messages)."""

    __slots__ = ("command", "jar", "source")

    def __init__(self, command=None, jar=None, source=""):
        self.command = list(command) if command is not None else None
        self.jar = jar
        self.source = source

    def __repr__(self):
        return "ServerLocation(%s, from %s)" % (self.command or self.jar, self.source)


def _split_command(command):
    """A command given as a string (one path, or a shell-style command line) or a list."""
    if isinstance(command, (list, tuple)):
        return [os.fspath(a) for a in command]
    command = os.fspath(command)
    if os.path.exists(command):  # a path, even with spaces in it
        return [command]
    return shlex.split(command, posix=os.name != "nt")


def _location_of(command, source):
    """A command (string or list) as a ServerLocation: a lone ``.jar`` runs with java; anything
    else runs as given. Raises ServerNotFound if its program does not exist."""
    argv = _split_command(command)
    if not argv:
        raise ServerNotFound("%s is empty; it should be a command such as /opt/blender-jobs-server/bin/"
                             "blender-jobs-server" % source, [])
    program = argv[0]
    if len(argv) == 1 and program.endswith(".jar"):
        if not os.path.isfile(program):
            raise ServerNotFound("%s names the jar %s, which does not exist" % (source, program), [])
        return ServerLocation(jar=os.path.abspath(program), source=source)
    found = shutil.which(program) if os.sep not in program and "/" not in program else (
        program if os.path.isfile(program) else None)
    if found is None:
        raise ServerNotFound("%s names %s, which %s" % (
            source, program, "is not on PATH" if os.sep not in program else "does not exist"), [])
    return ServerLocation(command=[found] + argv[1:], source=source)


def checkout_build_outputs(root):
    """What ``mvn package`` leaves in the checkout ``root``, in the order the client tries them:
    the distribution's launcher(s) (newest version first), then the jar."""
    target = os.path.join(root, "server", "target")
    launchers = []
    try:
        names = os.listdir(target)
    except OSError:
        names = []
    for name in names:
        launcher = os.path.join(target, name, "bin", SERVER_COMMAND)
        if name.startswith("blender-jobs-server-") and os.path.isfile(launcher):
            launchers.append(launcher)
    launchers.sort(key=lambda p: os.path.getmtime(p), reverse=True)
    return launchers, os.path.join(target, "blender-jobs-server.jar")


def _checkout_roots(extra=()):
    """Checkouts whose build output may hold the server: ``extra`` (callers' hints), the one this
    module sits in, and the current folder and its parents (someone working in a checkout)."""
    roots = []
    for root in list(extra) + [_OWN_CHECKOUT]:
        if root:
            roots.append(os.path.abspath(root))
    here = os.getcwd() if os.path.isdir(os.curdir) else None
    while here:
        roots.append(here)
        parent = os.path.dirname(here)
        here = parent if parent != here else None
    unique = []
    for root in roots:
        if root not in unique and os.path.isdir(os.path.join(root, "server")):
            unique.append(root)
    return unique


LOOKUP_ORDER = ("the server option", "$" + SERVER_ENV, SERVER_COMMAND + " on PATH",
                "the build output of a blender-jobs checkout")


def find_server(server=None, jar=None, checkouts=(), env=None, option="the server option"):
    """Finds the server the way every blender-jobs client does, and returns a
    :class:`ServerLocation`:

    1. ``server`` (a command: a string or list, e.g. the launcher's path; a lone ``.jar`` runs
       with java) or ``jar``: the caller's explicit option;
    2. ``$BLENDER_JOBS_SERVER``, a command line (or, from older setups, ``$BLENDER_JOBS_JAR``, a jar);
    3. ``blender-jobs-server`` on PATH (an installed distribution's ``bin/``);
    4. the build output of a checkout (``mvn package``): ``server/target/blender-jobs-server-<version>/
       bin/blender-jobs-server``, then ``server/target/blender-jobs-server.jar``, in ``checkouts``,
       the checkout this module sits in, and the current folder and its parents.

    Raises :class:`ServerNotFound` (a ``FileNotFoundError``) naming each place it looked, in this
    order, when none has a server; and when an explicitly named one does not exist. ``option``
    names the caller's option in messages (e.g. "the --server option")."""
    env = os.environ if env is None else env
    if isinstance(server, ServerLocation):
        return server
    if server is not None:
        return _location_of(server, "%s (%r)" % (option, server))
    if jar is not None:
        jar = os.path.abspath(os.fspath(jar))
        if not os.path.isfile(jar):
            raise ServerNotFound(
                "blender-jobs server jar not found at %s; build it with `mvn -q package -DskipTests` in the "
                "project root, or leave the jar out and let the client find the server (%s)" % (
                    jar, ", ".join(LOOKUP_ORDER)), [])
        return ServerLocation(jar=jar, source="the jar option")
    tried = ["1. %s: not given" % option]
    if env.get(SERVER_ENV):
        return _location_of(env[SERVER_ENV], "$%s" % SERVER_ENV)
    if env.get("BLENDER_JOBS_JAR"):
        return _location_of([env["BLENDER_JOBS_JAR"]], "$BLENDER_JOBS_JAR")
    tried.append("2. $%s: not set" % SERVER_ENV)
    on_path = shutil.which(SERVER_COMMAND, path=env.get("PATH"))
    if on_path:
        return ServerLocation(command=[on_path], source="%s on PATH" % SERVER_COMMAND)
    tried.append("3. %s on PATH: not found" % SERVER_COMMAND)
    looked = []
    for root in _checkout_roots(checkouts):
        launchers, built_jar = checkout_build_outputs(root)
        if launchers:
            return ServerLocation(command=[launchers[0]], source="the build output of the checkout %s" % root)
        if os.path.isfile(built_jar):
            return ServerLocation(jar=built_jar, source="the build output of the checkout %s" % root)
        looked.append(os.path.join(root, "server", "target"))
    tried.append("4. the build output of a blender-jobs checkout: %s" % (
        "nothing built in " + ", ".join(looked) if looked
        else "none found (looked in the current folder and its parents)"))
    raise ServerNotFound(
        "No blender-jobs server found. Looked, in this order, at:\n  " + "\n  ".join(tried) + "\n"
        "Install one: unpack blender-jobs-server-<version>.tar.gz and put its bin/ on PATH, or set %s to "
        "its bin/%s (in a checkout, `mvn -q package -DskipTests` builds both under server/target/)."
        % (SERVER_ENV, SERVER_COMMAND), tried)


# --------------------------------------------------------------------------- errors

class BlenderJobsError(Exception):
    """Base class of every error this module raises."""


class ServerNotFound(BlenderJobsError, FileNotFoundError):
    """No blender-jobs server was found (or the one named does not exist). The message lists
    where the client looked, in order; ``tried`` holds those lines."""

    def __init__(self, message, tried):
        BlenderJobsError.__init__(self, message)
        self.tried = list(tried)

    def __str__(self):
        return self.args[0]


class ProtocolError(BlenderJobsError):
    """The server sent something that is not valid framed JSON-RPC."""


class _Truncated(Exception):
    """The server's output ended in the middle of a message (it died while writing)."""


class RequestTimeout(BlenderJobsError, TimeoutError):
    """A request got no response within its timeout (the server may still answer later; the late
    response is then dropped)."""

    def __init__(self, method, timeout):
        BlenderJobsError.__init__(self, "request %r got no response within %.3g s" % (method, timeout))
        self.method = method
        self.timeout = timeout


class JobWaitTimeout(BlenderJobsError, TimeoutError):
    """wait_for_job gave up before the job came to rest (a final state or INTERRUPTED)."""

    def __init__(self, job_id, timeout, last_state=None):
        BlenderJobsError.__init__(self, "job %s did not finish within %.3g s%s" % (
            job_id, timeout, "" if last_state is None else " (last known state: %s)" % last_state))
        self.job_id = job_id
        self.timeout = timeout
        self.last_state = last_state


class ServerExited(BlenderJobsError):
    """The server process is gone (or its output closed); no response will come."""

    def __init__(self, message, returncode=None, stderr_tail=None):
        tail = list(stderr_tail or [])[-5:]
        text = message
        if returncode is not None:
            text += " (exit code %s)" % returncode
        if tail:
            text += "; last server log lines:\n  " + "\n  ".join(tail)
        BlenderJobsError.__init__(self, text)
        self.returncode = returncode
        self.stderr_tail = list(stderr_tail or [])


class JsonRpcError(BlenderJobsError):
    """A JSON-RPC error response. ``code``, ``message`` and ``data`` are the error's fields;
    ``error_kind`` is ``data.errorKind`` for application errors."""

    code = None  # set on subclasses for their code

    def __init__(self, code, message, data=None, method=None):
        BlenderJobsError.__init__(self, "%s (code %s%s)" % (message, code,
                                                            ", method %s" % method if method else ""))
        self.code = code
        self.message = message
        self.data = data
        self.method = method

    @property
    def error_kind(self):
        return self.data.get("errorKind") if isinstance(self.data, dict) else None

    @staticmethod
    def from_response(error, method=None):
        if not isinstance(error, dict):
            return JsonRpcError(-32603, "malformed error object: %r" % (error,), None, method)
        code = error.get("code")
        cls = _ERROR_CLASSES.get(code, JsonRpcError)
        return cls(code, str(error.get("message", "")), error.get("data"), method)


class ParseError(JsonRpcError):
    code = -32700


class InvalidRequest(JsonRpcError):
    code = -32600


class MethodNotFound(JsonRpcError):
    code = -32601


class InvalidParams(JsonRpcError):
    """-32602. ``field`` names the offending parameter, ``reason`` says what was wrong."""
    code = -32602

    @property
    def field(self):
        return self.data.get("field") if isinstance(self.data, dict) else None

    @property
    def reason(self):
        return self.data.get("reason") if isinstance(self.data, dict) else None


class InternalError(JsonRpcError):
    code = -32603


class ServerNotInitialized(JsonRpcError):
    code = -32002


class JobNotFound(JsonRpcError):
    code = 1001


class JobNotFinished(JsonRpcError):
    code = 1002


class _FailureData(object):
    """``failure_kind`` and ``failure_message`` from ``data.failureKind`` / ``data.failureMessage``."""

    @property
    def failure_kind(self):
        return self.data.get("failureKind") if isinstance(self.data, dict) else None

    @property
    def failure_message(self):
        return self.data.get("failureMessage") if isinstance(self.data, dict) else None


class JobFailed(_FailureData, JsonRpcError):
    """1003: the job failed; ``failure_kind`` and ``failure_message`` say how."""
    code = 1003


class JobCanceled(JsonRpcError):
    code = 1004


class JobNotRemovable(JsonRpcError):
    code = 1005


class JobInterrupted(_FailureData, JsonRpcError):
    """1006: the job is INTERRUPTED (the server stopped while it was queued or running), so it has
    no results; :meth:`BlenderJobsClient.resume_job` runs it again. ``failure_kind`` is
    ``INTERRUPTED`` and ``failure_message`` says what stopped the server."""
    code = 1006


class JobNotResumable(JsonRpcError):
    """1007: ``resumeJob`` on a job that is not INTERRUPTED (``data.state`` says what it is)."""
    code = 1007


class BlenderUnavailable(JsonRpcError):
    code = 1010


class ShuttingDown(JsonRpcError):
    code = 1011


class JobFilesUnavailable(JsonRpcError):
    code = 1012


_ERROR_CLASSES = dict((cls.code, cls) for cls in (
    ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError, ServerNotInitialized,
    JobNotFound, JobNotFinished, JobFailed, JobCanceled, JobNotRemovable, JobInterrupted, JobNotResumable,
    BlenderUnavailable, ShuttingDown, JobFilesUnavailable))


# --------------------------------------------------------------------------- internals

class _Pending(object):
    __slots__ = ("method", "event", "result", "error")

    def __init__(self, method):
        self.method = method
        self.event = threading.Event()
        self.result = None
        self.error = None


class _Waiter(object):
    __slots__ = ("job_id", "event", "final")

    def __init__(self, job_id):
        self.job_id = job_id
        self.event = threading.Event()
        self.final = None  # the job/stateChanged params of the resting state it woke up for


_STOP = object()

#: The JVM flags the README recommends, the distribution launcher's: the serial collector and a
#: small initial heap and young generation keep the server's resident memory near 145 MB however
#: many jobs it runs, and the C1 compiler alone runs it faster than with C2's compiles
#: (bench/RESULTS.md; the launcher also trims the C heap on JVMs that can).
#: A ``-Xmx`` below 32m needs a ``-Xms`` of its own.
JVM_OPTIONS = ("-XX:+UseSerialGC", "-Xms32m", "-Xmx512m", "-Xmn24m", "-XX:TieredStopAtLevel=1")


# --------------------------------------------------------------------------- client

class BlenderJobsClient(object):
    """Starts a blender-jobs server and talks JSON-RPC to it.

    :param server: the server command: a launcher path (``.../bin/blender-jobs-server``), a command
        line, or a list; a lone ``.jar`` path runs with java. Default: :func:`find_server`'s lookup
        ($BLENDER_JOBS_SERVER, then ``blender-jobs-server`` on PATH, then a checkout's build output).
    :param jar: path of blender-jobs-server.jar, run with java and ``jvm_options`` (an explicit
        option like ``server``).
    :param checkouts: more checkout folders whose build output :func:`find_server` tries.
    :param auto_initialize: the first request sends ``initialize`` (with ``workspace``) if it was
        not sent yet, so ``add_job`` works without ``with`` or an explicit :meth:`initialize`.
    :param server_args: extra command-line arguments for the server, e.g. ``["--workers", "2"]``.
    :param workers, blender, max_jobs_per_worker, state_dir, retain_jobs, retain_days, log_level:
        shortcuts for the server flags of the same name (``None`` leaves them out).
    :param resume: ``True`` passes ``--resume``: jobs an earlier server left INTERRUPTED in the state
        directory are queued again as soon as ``initialize`` opens it.
    :param workspace: the folder (or URI) of the project the jobs belong to. :meth:`initialize`
        sends it (``workspaceFolders`` and ``rootUri``), and the server then keeps its jobs in a
        state directory of that workspace that outlives it (``<data home>/blender-jobs/workspaces/...``)
        instead of a temporary one. ``state_dir`` overrides it.
    :param java: the java executable (default: $BLENDER_JOBS_JAVA, $JAVA_HOME/bin/java, ``java``;
        given to a launcher as $BLENDER_JOBS_JAVA).
    :param jvm_options: JVM flags before ``-jar`` (default: :data:`JVM_OPTIONS`, the launcher's;
        given to a launcher as $BLENDER_JOBS_JAVA_OPTS, after its own).
    :param stderr_echo: a text stream (e.g. ``sys.stderr``) that receives every server log line;
        ``None`` keeps the log quiet (the last lines are still available from :meth:`stderr_tail`).
    :param env: environment of the server process (default: this process's environment).
    :param request_timeout: default timeout of :meth:`request`, in seconds.
    :param new_session: start the server in its own session (POSIX) so that a Ctrl-C in the
        terminal reaches only this program, which can then shut the server down cleanly.
    """

    def __init__(self, jar=None, server_args=None, workers=None, blender=None, max_jobs_per_worker=None,
                 state_dir=None, log_level=None, java=None, jvm_options=None, stderr_echo=None, env=None,
                 request_timeout=60.0, stderr_lines=200, new_session=True, workspace=None, resume=False,
                 retain_jobs=None, retain_days=None, server=None, checkouts=(), auto_initialize=True):
        location = find_server(server=server, jar=jar, checkouts=checkouts, env=env)
        self.location = location
        self.jar = location.jar  # the jar when the server runs from one, else None (a launcher)
        self.request_timeout = request_timeout
        self.server_info = None  # the initialize result, once initialized
        self.workspace = workspace
        self.auto_initialize = auto_initialize
        # Jobs of this server's life: added or resumed by this client, or named by one of its
        # job/stateChanged notifications. Only for them is a resting state's notification on its
        # way; a job that came to rest under an earlier server never gets one.
        self._session_jobs = set()
        self._init_lock = threading.RLock()  # one lazy initialize at a time

        if location.jar is not None:
            args = [java or _default_java()] + list(jvm_options if jvm_options is not None else JVM_OPTIONS) + [
                "-jar", location.jar]
        else:
            args = list(location.command)
            # The launcher sets the JVM flags and finds java itself; pass the caller's choices on.
            if java or jvm_options is not None:
                env = dict(os.environ if env is None else env)
                if java:
                    env["BLENDER_JOBS_JAVA"] = java
                if jvm_options is not None:
                    env["BLENDER_JOBS_JAVA_OPTS"] = " ".join(jvm_options)
        for flag, value in (("--workers", workers), ("--blender", blender),
                            ("--max-jobs-per-worker", max_jobs_per_worker), ("--state-dir", state_dir),
                            ("--retain-jobs", retain_jobs), ("--retain-days", retain_days),
                            ("--log-level", log_level)):
            if value is not None:
                args += [flag, str(value)]
        if resume:
            args.append("--resume")
        args += [str(a) for a in (server_args or ())]
        self.command = args

        self._ids = itertools.count(1)
        self._lock = threading.Lock()          # pending, waiters, handlers, final cache, dead flag
        self._write_lock = threading.Lock()
        self._pending = {}
        self._waiters = {}                     # jobId -> list of _Waiter
        self._finals = collections.OrderedDict()  # jobId -> job/stateChanged params of its resting state
        self._handlers = {}                    # method -> list of callbacks
        self._dead = None                      # the ServerExited every later request raises
        self._closed = False
        self._stderr = collections.deque(maxlen=stderr_lines)
        self._stderr_echo = stderr_echo
        self._notifications = queue.Queue()
        self._reader_done = threading.Event()
        self._max_message_bytes = None

        popen_kwargs = {}
        if new_session and os.name == "posix":
            popen_kwargs["start_new_session"] = True
        elif new_session and os.name == "nt":
            popen_kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        try:
            self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, env=env, **popen_kwargs)
        except OSError as exc:
            raise BlenderJobsError("could not start the server (%s): %s" % (" ".join(args), exc))

        self._threads = []
        for target, name in ((self._read_loop, "blender-jobs-reader"),
                             (self._dispatch_loop, "blender-jobs-dispatcher"),
                             (self._stderr_loop, "blender-jobs-stderr"),
                             (self._watch_process, "blender-jobs-watch")):
            thread = threading.Thread(target=target, name=name)
            thread.daemon = True
            thread.start()
            self._threads.append(thread)
        self._dispatcher_thread = self._threads[1]

    # ------------------------------------------------------------------ lifecycle

    @property
    def pid(self):
        return self.process.pid

    def is_alive(self):
        """True while the server process runs and its output is open."""
        return self._dead is None and self.process.poll() is None

    def initialize(self, params=None, timeout=None, workspace=None):
        """Sends ``initialize`` (then the ``initialized`` notification) and returns the result:
        serverInfo, blender {available, path, version, problem}, workers, stateDir,
        stateDirTemporary, stateDirNote?, recoveredJobs {jobs, interrupted, resumed, pruned, unreadable},
        capabilities... (also kept as :attr:`server_info`; see :attr:`state_dir`,
        :attr:`state_dir_temporary`, :attr:`state_dir_note`, :attr:`recovered_jobs`).

        ``workspace`` (default: the constructor's) names the project: sent as ``workspaceFolders``
        and ``rootUri`` unless ``params`` has them. The server answers with the INTERRUPTED jobs an
        earlier server left (``recoveredJobs``), then sends their job/stateChanged → INTERRUPTED."""
        if params is None:
            params = {"processId": os.getpid(),
                      "clientInfo": {"name": "blender-jobs-python-client", "version": __version__}}
        workspace = workspace if workspace is not None else self.workspace
        if workspace is not None and not any(k in params for k in ("workspaceFolders", "rootUri", "rootPath")):
            uri = workspace_uri(workspace)
            name = urllib.parse.unquote(uri.rstrip("/").rsplit("/", 1)[-1]) or uri
            params = dict(params, rootUri=uri, workspaceFolders=[{"uri": uri, "name": name}])
        with self._init_lock:
            result = self.request("initialize", params, timeout=timeout)
            self.notify("initialized", {})
            caps = (result or {}).get("capabilities") or {}
            if isinstance(caps.get("maxMessageBytes"), int):
                self._max_message_bytes = caps["maxMessageBytes"]
            self.server_info = result
        return result

    def _initialize_once(self):
        """The lazy initialize of the first request (``auto_initialize``)."""
        with self._init_lock:
            if self.server_info is None:
                self.initialize()

    @property
    def state_dir(self):
        """``initialize.stateDir``: the server's state directory (None before initialize)."""
        return (self.server_info or {}).get("stateDir")

    @property
    def state_dir_temporary(self):
        """``initialize.stateDirTemporary``: True when the state directory (and so every job) is
        deleted when the server exits; None before initialize."""
        return (self.server_info or {}).get("stateDirTemporary")

    @property
    def state_dir_note(self):
        """``initialize.stateDirNote``: why the server does not use the directory the client would
        expect (e.g. another server holds the workspace's directory), or None."""
        return (self.server_info or {}).get("stateDirNote")

    @property
    def recovered_jobs(self):
        """``initialize.recoveredJobs``: {jobs, interrupted, resumed, pruned, unreadable} an earlier server left
        in the state directory; None before initialize."""
        return (self.server_info or {}).get("recoveredJobs")

    def close(self, timeout=10.0, kill_after=5.0):
        """Shuts the server down: ``shutdown`` (unfinished jobs become INTERRUPTED; with a
        persistent state directory a later server lists them and can resume them; call
        :meth:`cancel_all` first to drop them instead), ``exit``, closes its stdin, waits up to
        ``kill_after`` seconds for the process and kills it if it is still there. Returns the exit
        code. Safe to call more than once."""
        with self._lock:
            first = not self._closed
            self._closed = True
        if first and self.is_alive():
            try:
                self.request("shutdown", None, timeout=timeout)
                self.notify("exit")
            except BlenderJobsError as exc:
                LOG.debug("shutdown did not complete: %s", exc)
        try:
            self.process.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self.process.wait(kill_after)
        except subprocess.TimeoutExpired:
            LOG.warning("blender-jobs server (pid %s) did not exit within %.3g s; killing it",
                        self.process.pid, kill_after)
            self.process.kill()
            self.process.wait()
        except BaseException:  # e.g. a second Ctrl-C while waiting: do not leave the server behind
            self.process.kill()
            self.process.wait()
            raise
        self._reader_done.wait(2.0)
        self._fail_everything(ServerExited("the client closed the connection", self.process.returncode,
                                           self.stderr_tail()))
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(2.0)
        return self.process.returncode

    def kill(self):
        """Kills the server process at once (no shutdown)."""
        try:
            self.process.kill()
        except OSError:
            pass

    def __enter__(self):
        try:
            if self.server_info is None:
                self.initialize()
        except BaseException:
            self.close(timeout=2.0, kill_after=2.0)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def stderr_tail(self, lines=None):
        """The last lines the server wrote to stderr (its log), oldest first."""
        with self._lock:
            tail = list(self._stderr)
        return tail if lines is None else tail[-lines:]

    # ------------------------------------------------------------------ raw JSON-RPC

    def request(self, method, params=None, timeout=None):
        """Sends a request and waits for its response; returns the result.

        Raises :class:`JsonRpcError` (or a subclass such as :class:`JobNotFound`) for an error
        response, :class:`RequestTimeout` after ``timeout`` seconds (default: ``request_timeout``;
        ``None`` there means wait forever) and :class:`ServerExited` if the server goes away."""
        if timeout is None:
            timeout = self.request_timeout
        if (self.server_info is None and self.auto_initialize and method not in ("initialize", "shutdown")
                and threading.current_thread() is not self._dispatcher_thread):
            self._initialize_once()
        request_id = next(self._ids)
        pending = _Pending(method)
        message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        with self._lock:
            if self._dead is not None:
                raise self._dead
            self._pending[request_id] = pending
        try:
            self._send(message)
            if not pending.event.wait(timeout):
                raise RequestTimeout(method, timeout)
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
        if pending.error is not None:
            raise pending.error
        return pending.result

    def notify(self, method, params=None):
        """Sends a notification (no response)."""
        message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        with self._lock:
            if self._dead is not None:
                raise self._dead
        self._send(message)

    def on_notification(self, method, callback):
        """Calls ``callback(params)`` for every notification ``method`` (e.g. ``"job/progress"``),
        on the dispatcher thread, in the order the server sent them. Returns ``callback``."""
        with self._lock:
            self._handlers.setdefault(method, []).append(callback)
        return callback

    def remove_notification_handler(self, method, callback):
        with self._lock:
            handlers = self._handlers.get(method, [])
            if callback in handlers:
                handlers.remove(callback)

    def on_progress(self, callback):
        """``callback(params)`` for ``job/progress``: {jobId, progress, message?, reportedAt}."""
        return self.on_notification("job/progress", callback)

    def on_state_changed(self, callback):
        """``callback(params)`` for ``job/stateChanged``: {jobId, name, state, previousState?,
        attempt, error?}."""
        return self.on_notification("job/stateChanged", callback)

    def on_job_removed(self, callback):
        """``callback(params)`` for ``job/removed``: {jobId, reason}, reason ``REMOVED``
        (removeJob), ``REPLACED`` (replace_existing) or ``RETENTION`` (pruned by the server's
        retention policy). Later requests about the job raise :class:`JobNotFound`."""
        return self.on_notification("job/removed", callback)

    def on_server_message(self, callback):
        """``callback(params)`` for LSP ``window/showMessage``: {type, message, kind}. The server
        sends it when job states cannot be saved to disk (``kind`` ``RECORDS_NOT_SAVED``, type 2,
        a warning: jobs go on, but a restart would not know their latest state) and when they are
        saved again (``RECORDS_SAVED_AGAIN``, type 3)."""
        return self.on_notification("window/showMessage", callback)

    def on_log(self, callback):
        """``callback(params)`` for ``job/log``: {jobId, text}, the next part of the console of a
        job followed with :meth:`follow_log`, exactly as printed (invalid UTF-8 replaced), after
        the follow_log answer and before the job's resting job/stateChanged."""
        return self.on_notification("job/log", callback)

    # ------------------------------------------------------------------ typed requests

    def add_job(self, script=None, script_text=None, name=None, timeout=None, passed_data=None,
                passed_data_blocks=None, blend_file=None, max_attempts=None, isolation=None,
                replace_existing=None, priority=None, request_timeout=None, **extra):
        """Queues a job; give exactly one of ``script`` (path of a .py file) and ``script_text``.
        ``timeout`` is the job's run-time limit in seconds (0 = none); ``passed_data`` a dict whose
        keys become globals of the script; ``passed_data_blocks`` {"library": path, "names":
        {"objects": [...]}}; ``blend_file`` a .blend the job runs in (a private copy of it);
        ``priority`` an integer (default 0): a waiting job with a higher one starts first.
        Returns {jobId, name, state, attempt}. Other protocol fields can be given as keywords in
        camelCase."""
        params = {}
        if script is not None:
            params["script"] = os.path.abspath(os.fspath(script))
        if script_text is not None:
            params["scriptText"] = script_text
        if passed_data_blocks is not None:
            blocks = dict(passed_data_blocks)
            if blocks.get("library") is not None:
                blocks["library"] = os.path.abspath(os.fspath(blocks["library"]))
            passed_data_blocks = blocks
        if blend_file is not None:
            blend_file = os.path.abspath(os.fspath(blend_file))
        for key, value in (("name", name), ("timeout", timeout), ("passedData", passed_data),
                           ("passedDataBlocks", passed_data_blocks), ("blendFile", blend_file),
                           ("maxAttempts", max_attempts), ("isolation", isolation),
                           ("replaceExisting", replace_existing), ("priority", priority)):
            if value is not None:
                params[key] = value
        params.update(extra)
        result = self.request("addJob", params, timeout=request_timeout)
        self._note_session_jobs((result or {}).get("jobId"),)
        return result

    def get_progress(self, job_id, timeout=None):
        """{jobId, name, state, progress, message?, attempt, maxAttempts, createdAt, startedAt?,
        finishedAt?, elapsedMs}"""
        return self.request("getProgress", {"jobId": job_id}, timeout=timeout)

    def get_python_data(self, job_id, timeout=None):
        """The JSON value the script left in ``python_data``. Raises JobNotFinished, JobFailed,
        JobCanceled or JobInterrupted if there is none."""
        return self.request("getPythonData", {"jobId": job_id}, timeout=timeout)

    def get_data_blocks(self, job_id, timeout=None):
        """{jobId, library (path of the .blend holding the blocks, or None), blocks, count}"""
        return self.request("getDataBlocks", {"jobId": job_id}, timeout=timeout)

    def get_job(self, job_id, timeout=None):
        """Everything the server knows about a job, including error, logTail and timing."""
        return self.request("getJob", {"jobId": job_id}, timeout=timeout)

    def list_jobs(self, state=None, states=None, name=None, timeout=None):
        """{jobs: [{jobId, name, state, progress, attempt, createdAt, finishedAt?, errorKind?}], count}"""
        params = {}
        if state is not None:
            params["state"] = state
        if states is not None:
            params["states"] = list(states)
        if name is not None:
            params["name"] = name
        return self.request("listJobs", params, timeout=timeout)

    def cancel_job(self, job_id, timeout=None):
        """{jobId, state, previousState, canceled}; also cancels an INTERRUPTED job."""
        return self.request("cancelJob", {"jobId": job_id}, timeout=timeout)

    def cancel_all(self, timeout=None):
        """{canceled: n}: cancels every QUEUED, ACTIVE and INTERRUPTED job."""
        return self.request("cancelAll", {}, timeout=timeout)

    def resume_job(self, job_id, timeout=None):
        """Queues an INTERRUPTED job again (same jobId and inputs, a fresh attempt budget; the
        interruption moves to ``getJob.earlierErrors``). Returns {jobId, state (QUEUED or ACTIVE),
        previousState: "INTERRUPTED"}. Raises JobNotResumable (1007) if the job is not INTERRUPTED.
        :meth:`wait_for_job` afterwards waits for the resumed run."""
        result = self.request("resumeJob", {"jobId": job_id}, timeout=timeout)
        self._forget_interrupted((job_id,))
        self._note_session_jobs((job_id,))
        return result

    def resume_all(self, timeout=None):
        """Queues every INTERRUPTED job again, oldest first. Returns {resumed: n, jobIds: [...]}."""
        result = self.request("resumeAll", {}, timeout=timeout)
        resumed = (result or {}).get("jobIds") or ()
        self._forget_interrupted(resumed)
        self._note_session_jobs(resumed)
        return result

    def remove_job(self, job_id, timeout=None):
        """{jobId, removed: true}; the job must be finished or INTERRUPTED (else JobNotRemovable)."""
        return self.request("removeJob", {"jobId": job_id}, timeout=timeout)

    def get_stats(self, timeout=None):
        """{queued, active, completed, failed, canceled, interrupted, total, workers, freeWorkers,
        busyWorkers, workerDetails}"""
        return self.request("getStats", {}, timeout=timeout)

    def follow_log(self, job_id, timeout=None):
        """{jobId, text, following}: the job's console so far (the last 64 KiB) and, while it has
        not come to rest (``following`` true), what it prints next as ``job/log`` notifications
        (:meth:`on_log`) until it rests. The text plus the notifications' texts is the job's log
        (beyond 128 KiB a second, output is skipped and a line says how many bytes)."""
        return self.request("followLog", {"jobId": job_id}, timeout=timeout)

    def unfollow_log(self, job_id, timeout=None):
        """{jobId, following: false}: no ``job/log`` of the job comes after this returns."""
        return self.request("unfollowLog", {"jobId": job_id}, timeout=timeout)

    def shutdown(self, timeout=None):
        """Sends ``shutdown`` only (unfinished jobs become INTERRUPTED); :meth:`close` does the
        whole sequence."""
        return self.request("shutdown", None, timeout=timeout)

    def _note_session_jobs(self, job_ids):
        with self._lock:
            self._session_jobs.update(j for j in job_ids if j is not None)

    def _forget_interrupted(self, job_ids):
        """A resumed job is no longer at rest: drop a remembered INTERRUPTED so that a wait after
        the resume waits for the new run (its QUEUED notification may still be on its way)."""
        with self._lock:
            for job_id in job_ids:
                rested = self._finals.get(job_id)
                if rested is not None and rested.get("state") == "INTERRUPTED":
                    del self._finals[job_id]

    # ------------------------------------------------------------------ waiting

    def wait_for_job(self, job_id, timeout=None):
        """Waits (on job/stateChanged notifications, not by polling) until the job comes to rest,
        in one of :data:`RESTING_STATES`: COMPLETED, FAILED, CANCELED (final) or INTERRUPTED (the
        server was shut down, or died, while the job was queued or running; it may be resumed
        with :meth:`resume_job`). Returns that state change: the job/stateChanged params
        {jobId, name, state, previousState?, attempt, error?} (``error.kind`` is ``INTERRUPTED``
        for an interrupted job). Check ``state in FINAL_STATES`` to tell a finished job from an
        interrupted one. When this returns, every notification callback up to that state change
        has run (for a job that came to rest under an earlier server, the result is made from
        ``getJob`` and has no ``previousState``).

        Raises :class:`JobWaitTimeout` after ``timeout`` seconds (``None``: no limit),
        :class:`JobNotFound` for an unknown job and :class:`ServerExited` if the server dies."""
        if threading.current_thread() is self._dispatcher_thread:
            raise RuntimeError("wait_for_job cannot be called from a notification callback: the callback "
                               "runs on the thread that delivers the notification it would wait for")
        deadline = None if timeout is None else time.monotonic() + timeout
        waiter = _Waiter(job_id)
        with self._lock:
            final = self._finals.get(job_id)
            if final is not None:
                return dict(final)
            if self._dead is not None:
                raise self._dead
            self._waiters.setdefault(job_id, []).append(waiter)
        try:
            # The job may have finished before we were listening (or before this client existed):
            # ask once. If it is final, its notification is normally right behind; give it a moment
            # so the caller gets the error details and its callbacks have run.
            try:
                progress = self.get_progress(job_id, timeout=_remaining(deadline, self.request_timeout))
            except RequestTimeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise JobWaitTimeout(job_id, timeout)
                raise
            except (InvalidRequest, ShuttingDown, ServerExited):
                # The server is shutting down (-32600 to requests after shutdown) or has exited:
                # the job's INTERRUPTED notification, or the server's end, wakes the waiter.
                progress = None
            if progress is not None and progress.get("state") in RESTING_STATES:
                # A job that came to rest under this server has its notification on the way; one
                # that did so under an earlier server (same state directory) never gets one.
                with self._lock:
                    grace = 2.0 if job_id in self._session_jobs else 0.0
                if not waiter.event.wait(min(grace, _remaining(deadline, grace))):
                    return self._final_from_progress(progress, deadline)
            elif not waiter.event.wait(_remaining(deadline, None)):
                raise JobWaitTimeout(job_id, timeout, self._last_state(job_id))
            if waiter.final is None:  # woken because the server died
                with self._lock:
                    final = self._finals.get(job_id)
                if final is not None:
                    return dict(final)
                raise self._dead or ServerExited("the server exited", self.process.poll(), self.stderr_tail())
            return dict(waiter.final)
        finally:
            with self._lock:
                waiters = self._waiters.get(job_id)
                if waiters is not None:
                    if waiter in waiters:
                        waiters.remove(waiter)
                    if not waiters:
                        del self._waiters[job_id]

    def wait_for_jobs(self, job_ids, timeout=None):
        """wait_for_job for several jobs; returns {jobId: resting state change} (one deadline for
        all)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        results = {}
        for job_id in job_ids:
            try:
                results[job_id] = self.wait_for_job(job_id, _remaining(deadline, None))
            except JobWaitTimeout:
                raise JobWaitTimeout(job_id, timeout, self._last_state(job_id))
        return results

    def _last_state(self, job_id):
        try:
            return self.get_progress(job_id, timeout=5.0).get("state")
        except BlenderJobsError:
            return None

    def _final_from_progress(self, progress, deadline):
        final = {"jobId": progress.get("jobId"), "name": progress.get("name"), "state": progress.get("state"),
                 "attempt": progress.get("attempt")}
        if progress.get("state") in ("FAILED", "INTERRUPTED"):
            try:
                # The job is over; allow the details a moment even if the caller's deadline is near.
                wait = max(2.0, _remaining(deadline, self.request_timeout or 60.0))
                job = self.get_job(progress["jobId"], timeout=wait)
                if job.get("error") is not None:
                    final["error"] = job["error"]
            except JobNotFound:
                pass
        return final

    # ------------------------------------------------------------------ I/O

    def _send(self, message):
        body = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        if self._max_message_bytes is not None and len(body) > self._max_message_bytes:
            raise ValueError("the %s message is %d bytes; the server reads at most %d (maxMessageBytes); "
                             "send large data as files" % (message.get("method", "response"), len(body),
                                                           self._max_message_bytes))
        frame = ("Content-Length: %d\r\n\r\n" % len(body)).encode("ascii") + body
        try:
            with self._write_lock:
                self.process.stdin.write(frame)
                self.process.stdin.flush()
        except (OSError, ValueError) as exc:
            dead = ServerExited("could not write to the server: %s" % exc, self.process.poll(), self.stderr_tail())
            self._fail_everything(dead)
            raise dead

    def _read_message(self, stream):
        """One framed message, or None at end of stream."""
        headers = {}
        header_bytes = 0
        while True:
            line = stream.readline(_MAX_HEADER_BYTES)
            if not line:
                if headers or header_bytes:
                    raise _Truncated("the server's output ended inside a message header")
                return None
            header_bytes += len(line)
            if header_bytes > _MAX_HEADER_BYTES:
                raise ProtocolError("message header longer than %d bytes" % _MAX_HEADER_BYTES)
            line = line.rstrip(b"\r\n")
            if not line:
                if not headers:
                    continue  # tolerate stray blank lines between messages
                break
            name, sep, value = line.partition(b":")
            if not sep:
                raise ProtocolError("malformed header line from the server: %r" % line[:200])
            headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers[b"content-length"])
        except (KeyError, ValueError):
            raise ProtocolError("message without a valid Content-Length header: %r" % headers)
        body = bytearray()
        while len(body) < length:
            chunk = stream.read(length - len(body))
            if not chunk:
                raise _Truncated("the server's output ended inside a message body")
            body += chunk
        try:
            return json.loads(body.decode("utf-8"))
        except ValueError as exc:
            raise ProtocolError("message body is not JSON: %s" % exc)

    def _read_loop(self):
        stream = self.process.stdout
        reason = "the server closed its output"
        try:
            while True:
                message = self._read_message(stream)
                if message is None:
                    break
                self._handle(message)
        except _Truncated as exc:
            reason = str(exc)
        except ProtocolError as exc:
            reason = "protocol error: %s" % exc
            LOG.error("%s; stopping the server", reason)
            self.kill()
        except Exception as exc:  # never let the reader die silently
            reason = "the client's reader failed: %r" % (exc,)
            LOG.exception("reader failed")
            self.kill()
        finally:
            try:
                stream.close()
            except (OSError, ValueError):
                pass
            self._reader_done.set()
            returncode = None
            try:
                returncode = self.process.wait(0.5)
            except subprocess.TimeoutExpired:
                pass
            self._fail_everything(ServerExited(reason if not self._closed else "the connection was closed",
                                               returncode, self.stderr_tail()))

    def _handle(self, message):
        if isinstance(message, list):  # a batch
            for item in message:
                self._handle(item)
            return
        if not isinstance(message, dict):
            LOG.warning("ignoring a non-object message from the server: %r", message)
            return
        method = message.get("method")
        if method is not None:
            if "id" in message:  # a request from the server: we serve none
                self._send({"jsonrpc": "2.0", "id": message["id"],
                            "error": {"code": -32601, "message": "the client handles no requests (%s)" % method}})
            else:
                self._notifications.put((method, message.get("params")))
            return
        request_id = message.get("id")
        with self._lock:
            pending = self._pending.get(request_id)
        if pending is None:
            if request_id is None and "error" in message:
                LOG.warning("server error without a request id: %s", message["error"])
            else:
                LOG.debug("dropping a response nobody waits for (id %r; timed out?)", request_id)
            return
        if "error" in message and message["error"] is not None:
            pending.error = JsonRpcError.from_response(message["error"], pending.method)
        else:
            pending.result = message.get("result")
        pending.event.set()

    def _dispatch_loop(self):
        while True:
            item = self._notifications.get()
            if item is _STOP:
                # The connection is dead and every notification before it was delivered: wake
                # whoever still waits for a job (they raise ServerExited).
                with self._lock:
                    waiters = [w for ws in self._waiters.values() for w in ws]
                for waiter in waiters:
                    waiter.event.set()
                break
            method, params = item
            with self._lock:
                handlers = list(self._handlers.get(method, ()))
            for callback in handlers:
                try:
                    callback(params)
                except Exception:
                    LOG.exception("notification callback %r failed for %s", callback, method)
            if method == "job/removed" and isinstance(params, dict):
                # The server forgot the job: so does this client (a later wait raises JobNotFound).
                with self._lock:
                    self._finals.pop(params.get("jobId"), None)
                    self._session_jobs.discard(params.get("jobId"))
                continue
            if method == "job/stateChanged" and isinstance(params, dict):
                job_id = params.get("jobId")
                self._note_session_jobs((job_id,))
                if params.get("state") not in RESTING_STATES:
                    # e.g. INTERRUPTED -> QUEUED after a resume: no longer at rest
                    with self._lock:
                        self._finals.pop(job_id, None)
                    continue
                with self._lock:
                    self._finals[job_id] = params
                    self._finals.move_to_end(job_id)
                    while len(self._finals) > _FINAL_CACHE_SIZE:
                        self._finals.popitem(last=False)
                    waiters = list(self._waiters.get(job_id, ()))
                for waiter in waiters:
                    waiter.final = params
                    waiter.event.set()

    def _stderr_loop(self):
        stream = self.process.stderr
        while True:
            try:
                raw = stream.readline()
            except (OSError, ValueError):
                break
            if not raw:
                break
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._lock:
                self._stderr.append(line)
            echo = self._stderr_echo
            if echo is not None:
                try:
                    echo.write(line + "\n")
                    echo.flush()
                except Exception:
                    pass
        try:
            stream.close()
        except (OSError, ValueError):
            pass

    def _watch_process(self):
        returncode = self.process.wait()
        # The output normally closes with the process; if a descendant kept it open, do not wait
        # for it forever: pending requests fail shortly after the process is gone.
        if not self._reader_done.wait(2.0):
            self._fail_everything(ServerExited("the server process exited", returncode, self.stderr_tail()))

    def _fail_everything(self, error):
        """Marks the connection dead: every pending and later request raises ``error``."""
        with self._lock:
            if self._dead is None:
                self._dead = error
                first = True
            else:
                error = self._dead
                first = False
            pending = list(self._pending.values())
        for p in pending:
            if not p.event.is_set():
                p.error = error
                p.event.set()
        if first:
            # Callbacks still queued run first; then the dispatcher wakes job waiters and stops.
            self._notifications.put(_STOP)


def _remaining(deadline, default):
    if deadline is None:
        return default
    return max(0.0, deadline - time.monotonic())


def _default_java():
    explicit = os.environ.get("BLENDER_JOBS_JAVA")
    if explicit:
        return explicit
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = os.path.join(home, "bin", "java.exe" if os.name == "nt" else "java")
        if os.path.isfile(candidate):
            return candidate
    return "java"
