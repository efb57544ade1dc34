"""The add-on's working parts as plain functions: no operators, panels or timers here.

The UI (``ui.py``) calls these, and so do the tests, because modal operators and
``bpy.app.timers`` do not run in background Blender (``blender -b``).

    session = get_session(jar="/path/blender-jobs-server.jar")    # starts the server once
    job_id = send_selected(session.client, "remesh.py", bpy.context.selected_objects,
                           passed_data={"duration": 0.5}, timeout=60)
    ...
    for event in poll(session.events):       # main thread, e.g. from a timer
        ...                                  # Event(method, params) from the client's callbacks
    loaded = load_data_blocks(session.client, job_id, replace=True)

Threading rule: the client delivers notifications on its own dispatcher thread. The callbacks
installed by :func:`connect_events` only put them into a ``queue.Queue``; everything that touches
``bpy`` happens on Blender's main thread, in :func:`poll` callers.
"""

import collections
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time

import bpy

_HERE = os.path.dirname(os.path.abspath(__file__))

#: Final job states (the server never changes them again).
FINAL_STATES = frozenset(("COMPLETED", "FAILED", "CANCELED"))
#: States a job rests in until someone acts: the final ones plus INTERRUPTED (the server stopped
#: while the job was queued or running; :func:`resume_job` runs it again if the server keeps its
#: jobs in a state directory that outlives it, the add-on's "Job Folder" preference).
RESTING_STATES = FINAL_STATES | frozenset(("INTERRUPTED",))

#: Lines of a job's console the panel keeps and shows (its log file has all of it).
LOG_LINES = 6
#: Longest console line kept (longer ones are cut for the panel).
LOG_LINE_CHARS = 200

#: One notification from the server, as the client's callbacks received it.
Event = collections.namedtuple("Event", "method params")


# --------------------------------------------------------------------------- finding things

def find_client_dir(explicit=None, jar=None):
    """The folder holding ``blender_jobs_client.py``: ``explicit``, else $BLENDER_JOBS_CLIENT_DIR,
    else ``../../python`` next to this add-on in the repository, else
    ``<repo>/client-examples/python`` derived from a jar at ``<repo>/server/target/*.jar``.
    Returns None if none of them has the module."""
    candidates = [explicit, os.environ.get("BLENDER_JOBS_CLIENT_DIR"),
                  os.path.join(_HERE, "..", "..", "python")]
    if jar:
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(jar))))
        candidates.append(os.path.join(repo, "client-examples", "python"))
    for candidate in candidates:
        if candidate:
            candidate = os.path.abspath(bpy.path.abspath(candidate))
            if os.path.isfile(os.path.join(candidate, "blender_jobs_client.py")):
                return candidate
    return None


def import_client(client_dir=None, jar=None):
    """Imports and returns the ``blender_jobs_client`` module (the repository's standard-library
    Python client), adding its folder to ``sys.path`` if needed."""
    try:
        import blender_jobs_client
        return blender_jobs_client
    except ImportError:
        pass
    folder = find_client_dir(client_dir, jar)
    if folder is None:
        raise ImportError(
            "blender_jobs_client.py not found: set the add-on preference 'Client Folder' (or "
            "$BLENDER_JOBS_CLIENT_DIR) to the folder client-examples/python of blender-jobs")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import blender_jobs_client
    return blender_jobs_client


def find_jar(explicit=None):
    """The server jar: ``explicit``, else $BLENDER_JOBS_JAR, else the build output
    ``server/target/blender-jobs-server.jar`` of the repository this add-on sits in. The path
    is returned even if it does not exist (the client then raises a clear error)."""
    if explicit:
        return os.path.abspath(bpy.path.abspath(explicit))
    env = os.environ.get("BLENDER_JOBS_JAR")
    if env:
        return os.path.abspath(env)
    return os.path.normpath(os.path.join(_HERE, "..", "..", "..", "server", "target",
                                         "blender-jobs-server.jar"))


# --------------------------------------------------------------------------- events

def connect_events(client, events=None):
    """Installs callbacks on ``client`` that put every ``job/progress`` and ``job/stateChanged``
    notification into ``events`` (a ``queue.Queue``, created if None) as :class:`Event` tuples,
    and returns the queue. The callbacks run on the client's thread and do nothing else: never
    touch ``bpy`` there."""
    if events is None:
        events = queue.Queue()
    client.on_progress(lambda params: events.put(Event("job/progress", params)))
    client.on_state_changed(lambda params: events.put(Event("job/stateChanged", params)))
    client.on_notification("job/removed", lambda params: events.put(Event("job/removed", params)))
    # Job states that could not be saved to disk (a full disk), then their recovery.
    client.on_notification("window/showMessage", lambda params: events.put(Event("window/showMessage", params)))
    # The console of followed jobs (follow_log), as they print.
    client.on_notification("job/log", lambda params: events.put(Event("job/log", params)))
    return events


def poll(client_events_queue, max_events=None):
    """Drains the queue without blocking and returns the events it held, oldest first
    (a list of :class:`Event`; empty if nothing arrived). Call it on the main thread."""
    out = []
    while max_events is None or len(out) < max_events:
        try:
            out.append(client_events_queue.get_nowait())
        except queue.Empty:
            break
    return out


# --------------------------------------------------------------------------- sending

def send_selected(client, script, objects, passed_data=None, timeout=0, name=None, max_attempts=None):
    """Writes ``objects`` to a temporary .blend library and queues ``script`` with them as
    ``passedDataBlocks`` (``{"library": ..., "names": {"objects": [...]}}``). Returns the job id.

    ``script`` is the path of a .py file; ``passed_data`` a JSON-able dict (each key becomes a
    global of the script); ``timeout`` seconds per attempt (0 = none). The library lives in a
    private directory made with ``tempfile.mkdtemp`` and is deleted as soon as ``addJob`` has
    answered, because the server copies it while ``addJob`` runs."""
    objects = [ob for ob in objects if ob is not None]
    if not objects:
        raise ValueError("no objects to send: select at least one object")
    script = os.path.abspath(bpy.path.abspath(script or ""))
    if not os.path.isfile(script):
        raise ValueError("the script %r does not exist" % script)
    if passed_data is not None and not isinstance(passed_data, dict):
        raise ValueError("passed data must be a JSON object (a dict), got %s" % type(passed_data).__name__)
    for ob in objects:
        if ob.mode == 'EDIT':
            ob.update_from_editmode()  # send what the user sees, not the last object-mode state
    folder = tempfile.mkdtemp(prefix="blender-jobs-addon-")
    try:
        library = os.path.join(folder, "passed.blend")
        bpy.data.libraries.write(library, set(objects), fake_user=True)
        names = sorted(ob.name for ob in objects)
        result = client.add_job(script=script, name=name, timeout=timeout, passed_data=passed_data,
                                passed_data_blocks={"library": library, "names": {"objects": names}},
                                max_attempts=max_attempts)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result["jobId"]


def cancel_job(client, job_id):
    """Cancels a queued, running or interrupted job; returns True if this call canceled it."""
    return bool(client.cancel_job(job_id).get("canceled"))


def resume_job(client, job_id):
    """Queues an INTERRUPTED job again (same id, same inputs); returns its new state (QUEUED or
    ACTIVE). Raises the client's ``JobNotResumable`` if the job is not interrupted, ``JobNotFound``
    if this server does not have it (its server kept its jobs in a temporary folder)."""
    return client.resume_job(job_id).get("state")


def resume_all(client):
    """Queues every INTERRUPTED job again, oldest first; returns their ids."""
    return list(client.resume_all().get("jobIds") or [])


def follow_log(client, info):
    """Follows a job's console: ``info.log_lines`` gets its last lines now (``followLog``), and
    the job/log events :meth:`JobTracker.apply` sees add what it prints next, until it rests.
    Returns True if the job is being followed (False: it already rests; its last lines are set)."""
    result = client.follow_log(info.job_id)
    info.set_log(result.get("text") or "")
    info.following = bool(result.get("following"))
    return info.following


def unfollow_log(client, info):
    """Stops following a job's console (the lines shown so far stay)."""
    info.following = False
    client.unfollow_log(info.job_id)


# --------------------------------------------------------------------------- loading results

def _id_collection(coll_name):
    coll = getattr(bpy.data, coll_name, None)
    if coll is None or not hasattr(coll, "get"):
        raise ValueError("bpy.data has no collection %r" % coll_name)
    return coll


def _target_scene(scene=None):
    if scene is not None:
        return scene
    scene = getattr(bpy.context, "scene", None)
    if scene is None:
        wm = getattr(bpy.context, "window_manager", None)
        if wm is not None and len(wm.windows):
            scene = wm.windows[0].scene
    if scene is None and len(bpy.data.scenes):
        scene = bpy.data.scenes[0]
    return scene


def load_data_blocks(client, job_id, replace=False, scene=None, link=True):
    """Appends the data blocks a COMPLETED job returned (``getDataBlocks`` →
    ``bpy.data.libraries.load(library, link=False)``) into the open file and returns the loaded
    ID blocks (only the ones the script listed in ``data_blocks``; what they use, such as an
    object's mesh, comes along).

    Appended objects are linked into ``scene.collection`` (default: the current scene) unless
    ``link`` is False.

    ``replace=False``: blocks whose names are taken get Blender's usual ``.001`` suffix.
    ``replace=True``: a local block with the same name (same type) is replaced:
      1. the existing block is renamed aside, so the new one gets the exact name;
      2. every user of the old block is remapped to the new one (``ID.user_remap``): a replaced
         object ends up in the old object's collections, with its children and modifiers that
         pointed at it now pointing at the new one;
      3. the old block is deleted; for an object, its old data (mesh, curve...) too if nothing else
         uses it, and then the new data takes the old data's name.
    Raises the client's ``JobFailed``/``JobCanceled``/``JobInterrupted``/``JobNotFinished`` if the job
    has no results."""
    result = client.get_data_blocks(job_id)
    library = result.get("library")
    blocks = result.get("blocks") or {}
    if not library or not blocks:
        return []
    if not os.path.isfile(library):
        raise FileNotFoundError("the job's result library %s is gone (was the job removed?)" % library)

    # 1. rename existing same-named blocks aside
    aside = {}
    if replace:
        for coll_name, names in blocks.items():
            coll = _id_collection(coll_name)
            for name in names:
                old = coll.get(name)
                if old is not None and old.library is None:
                    aside[(coll_name, name)] = old
                    old.name = ("~replaced~" + name)[:60]
    requested = {}
    try:
        with bpy.data.libraries.load(library, link=False) as (data_from, data_to):
            for coll_name, names in blocks.items():
                available = set(getattr(data_from, coll_name, ()))
                requested[coll_name] = [n for n in names if n in available]
                setattr(data_to, coll_name, list(requested[coll_name]))
        # after the with block, data_to's lists hold the appended IDs in the requested order
        loaded_by_key = collections.OrderedDict()
        for coll_name, names in requested.items():
            for name, block in zip(names, getattr(data_to, coll_name, ()) or ()):
                if block is not None:
                    loaded_by_key[(coll_name, name)] = block
    except BaseException:
        for (coll_name, name), old in aside.items():
            old.name = name
        raise

    # 2./3. remap users of the replaced blocks and delete them
    # (objects last: an object's old data may itself be a replaced block, remapped just before)
    for key, old in sorted(aside.items(), key=lambda item: item[0][0] == "objects"):
        coll_name, name = key
        new = loaded_by_key.get(key)
        if new is None:          # nothing came back under that name: keep the old block
            old.name = name
            continue
        old_data = getattr(old, "data", None) if coll_name == "objects" else None
        old_data_name = old_data.name if old_data is not None else None
        old.user_remap(new)
        _id_collection(coll_name).remove(old)
        new.name = name
        if old_data is not None and old_data.users == 0 and old_data.library is None:
            bpy.data.batch_remove([old_data])
            new_data = getattr(new, "data", None)
            if new_data is not None and new_data.library is None and new_data.name != old_data_name:
                new_data.name = old_data_name

    loaded = list(loaded_by_key.values())
    target = _target_scene(scene)
    for block in loaded:
        if isinstance(block, bpy.types.Object) and link and target is not None and not block.users_collection:
            target.collection.objects.link(block)
    for block in loaded:
        # the server writes its results with fake users; drop them where there is a real user now
        if block.use_fake_user and block.users > 1:
            block.use_fake_user = False
    return loaded


# --------------------------------------------------------------------------- job tracking

class JobInfo(object):
    """What the add-on knows about one job, updated from notifications on the main thread."""

    def __init__(self, job_id, name=None):
        self.job_id = job_id
        self.name = name or job_id
        self.state = "QUEUED"
        self.progress = 0.0
        self.message = ""
        self.attempt = 0
        self.error = None          # ErrorInfo dict of the latest failure
        self.script = None
        self.objects = []
        self.scene_name = None     # the scene to load results into
        self.replace = False
        self.auto_load = True
        self.loaded = None         # names of loaded blocks once loaded
        self.load_error = None
        self.created = time.time()
        self.log_lines = []        # the last LOG_LINES lines of its console, once followed
        self._log_partial = ""     # a line printed without its newline yet
        self.following = False     # job/log events are applied (follow_log)

    def set_log(self, text):
        """Starts the console over with ``text`` (a followLog answer)."""
        self.log_lines, self._log_partial = [], ""
        self.append_log(text)

    def append_log(self, text):
        """Adds console text as printed (a job/log event); keeps the last LOG_LINES lines."""
        pieces = (self._log_partial + text).replace("\r\n", "\n").split("\n")
        self._log_partial = pieces.pop()[:LOG_LINE_CHARS * 4]
        self.log_lines.extend(line[:LOG_LINE_CHARS] for line in pieces)
        del self.log_lines[:-LOG_LINES]

    def last_log_lines(self):
        """The lines to show: the last complete ones and the one being printed."""
        lines = self.log_lines + ([self._log_partial[:LOG_LINE_CHARS]] if self._log_partial else [])
        return lines[-LOG_LINES:]

    @property
    def final(self):
        """COMPLETED, FAILED or CANCELED: the job never changes again."""
        return self.state in FINAL_STATES

    @property
    def resting(self):
        """Final or INTERRUPTED: nothing happens to the job unless someone acts (no polling needed)."""
        return self.state in RESTING_STATES

    def error_text(self):
        if self.load_error:
            return "loading failed: %s" % self.load_error
        if self.error:
            return "%s: %s" % (self.error.get("kind", "?"), self.error.get("message", ""))
        return ""

    def __repr__(self):
        return "JobInfo(%s, %s, %.0f%%)" % (self.job_id, self.state, self.progress * 100)


class JobTracker(object):
    """The job list and counters shown in the panel, fed by :func:`poll` events."""

    def __init__(self):
        self.jobs = collections.OrderedDict()

    def add(self, job_id, name=None, **attrs):
        info = self.jobs.get(job_id)
        if info is None:
            info = self.jobs[job_id] = JobInfo(job_id, name)
        elif name:
            info.name = name
        for key, value in attrs.items():
            setattr(info, key, value)
        return info

    def apply(self, events):
        """Applies events; returns the JobInfos that turned COMPLETED in them."""
        completed = []
        for method, params in events:
            if not isinstance(params, dict) or "jobId" not in params:
                continue
            if method == "job/removed":   # removeJob, replaceExisting or the server's retention
                self.jobs.pop(params["jobId"], None)
                continue
            if method == "job/log":       # a followed job printed (before its resting state change)
                info = self.jobs.get(params["jobId"])
                if info is not None and info.following:
                    info.append_log(params.get("text") or "")
                continue
            info = self.jobs.get(params["jobId"])
            if info is None:  # a notification may arrive before addJob's response
                info = self.add(params["jobId"], params.get("name"))
            if info.final:
                continue      # final states never change
            if method == "job/progress":
                info.progress = float(params.get("progress", 0.0))
                info.message = params.get("message") or ""
            elif method == "job/stateChanged":
                state = params.get("state", info.state)
                if state == "ACTIVE" and info.state != "ACTIVE":
                    info.progress, info.message = 0.0, ""   # a (re)try starts at 0
                if params.get("previousState") == "INTERRUPTED" or info.state == "INTERRUPTED":
                    info.error = None                       # resumed (or canceled): a new chapter
                info.state = state
                if state in RESTING_STATES:
                    info.following = False                  # the server sends no more of its log
                info.attempt = params.get("attempt", info.attempt)
                if params.get("error") is not None:
                    info.error = params["error"]
                if state == "COMPLETED":
                    info.progress = 1.0
                    info.error = None
                    completed.append(info)
        return completed

    def mark_lost(self, reason):
        """Marks every queued or running job FAILED (the server went away without saying what
        became of them). Interrupted jobs stay interrupted."""
        for info in self.jobs.values():
            if not info.resting:
                info.state = "FAILED"
                info.error = {"kind": "SERVER_EXITED", "message": reason}

    def adopt(self, summaries):
        """Tracks jobs the server lists (``listJobs`` summaries), e.g. the INTERRUPTED jobs an
        earlier server left in the state directory, so the panel shows them and offers to resume
        them. Returns their JobInfos."""
        adopted = []
        for job in summaries:
            info = self.add(job["jobId"], job.get("name"))
            info.state = job.get("state", info.state)
            info.progress = float(job.get("progress", 0.0))
            info.attempt = job.get("attempt", info.attempt)
            if job.get("errorKind") == "INTERRUPTED":
                info.error = {"kind": "INTERRUPTED",
                              "message": "the server stopped before the job finished; Resume runs it again"}
            adopted.append(info)
        return adopted

    def counts(self):
        """{queued, running, completed, failed, canceled, interrupted, total}, as in the panel."""
        counts = dict(queued=0, running=0, completed=0, failed=0, canceled=0, interrupted=0)
        key = {"QUEUED": "queued", "ACTIVE": "running", "COMPLETED": "completed",
               "FAILED": "failed", "CANCELED": "canceled", "INTERRUPTED": "interrupted"}
        for info in self.jobs.values():
            counts[key.get(info.state, "failed")] += 1
        counts["total"] = len(self.jobs)
        return counts

    def remove(self, job_id):
        self.jobs.pop(job_id, None)


# --------------------------------------------------------------------------- the server session

class Session(object):
    """The one server of this Blender session: its client, its event queue and its job list."""

    def __init__(self, client):
        self.client = client
        self.events = connect_events(client)
        self.tracker = JobTracker()
        self.server_message = None  # the latest window/showMessage params: {type, message, kind}

    def alive(self):
        return self.client.is_alive()


try:        # keep the running server across a script reload (importlib.reload of this module)
    _session
except NameError:
    _session = None
_session_lock = threading.Lock()


def current_session():
    """The running session, or None (never starts one)."""
    return _session


def get_session(jar=None, workers=None, blender=None, java=None, client_dir=None, server_args=None,
                state_dir=None):
    """Returns the session's server, starting it (and sending ``initialize``) the first time, or
    again if it died. ``jar`` defaults to :func:`find_jar`; ``blender`` to the running Blender
    (``bpy.app.binary_path``), so the workers match the user's Blender version.

    ``state_dir``: a folder where the server keeps its jobs and results across restarts
    (``--state-dir``). Jobs still queued or running when a server stops become INTERRUPTED there,
    and the next server's session lists them (``session.tracker``) so they can be resumed. Without
    it the server uses a temporary folder and its jobs end with it."""
    global _session
    with _session_lock:
        if _session is not None and _session.alive():
            return _session
        old, _session = _session, None
    if old is not None:
        try:
            old.client.close(timeout=2.0, kill_after=2.0)
        except Exception:
            pass
    jar = find_jar(jar)
    module = import_client(client_dir, jar)
    if not blender:
        blender = bpy.app.binary_path or None
    if state_dir:
        state_dir = os.path.abspath(bpy.path.abspath(state_dir))
    client = module.BlenderJobsClient(jar=jar, workers=workers or None, blender=blender, java=java or None,
                                      server_args=server_args, state_dir=state_dir or None)
    try:
        info = client.initialize()
    except BaseException:
        client.close(timeout=2.0, kill_after=2.0)
        raise
    if not (info.get("blender") or {}).get("available", False):
        problem = (info.get("blender") or {}).get("problem", "no usable Blender")
        client.close(timeout=2.0, kill_after=2.0)
        raise RuntimeError("the blender-jobs server cannot run jobs: %s" % problem)
    session = Session(client)
    if old is not None:
        old.tracker.mark_lost("the server exited; it was restarted")
        session.tracker.jobs.update(old.tracker.jobs)
    if (info.get("recoveredJobs") or {}).get("interrupted"):
        try:
            session.tracker.adopt(client.list_jobs(state="INTERRUPTED")["jobs"])
        except Exception:
            client.close(timeout=2.0, kill_after=2.0)
            raise
    with _session_lock:
        _session = session
    return session


def shutdown_session(timeout=10.0):
    """Shuts the server down (``shutdown`` + ``exit``; waits for it, kills it if it hangs); its
    queued and running jobs become INTERRUPTED (resumable by the next server if it keeps its jobs
    in a state directory). Returns the server's exit code, or None if none was running. Safe to
    call repeatedly."""
    global _session
    with _session_lock:
        session, _session = _session, None
    if session is None:
        return None
    return session.client.close(timeout=timeout, kill_after=5.0)


def parse_passed_data(text):
    """Parses the panel's 'Passed Data' text: empty → None, else a JSON object (dict)."""
    text = (text or "").strip()
    if not text:
        return None
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("passed data must be a JSON object such as {\"duration\": 0.5}")
    return value
