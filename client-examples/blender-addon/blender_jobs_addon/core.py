"""The add-on's working parts as plain functions: no operators, panels or timers here.

The UI (``ui.py``) calls these, and so do the tests, because modal operators and
``bpy.app.timers`` do not run in background Blender (``blender -b``).

    session = get_session(server="/opt/blender-jobs-server/bin/blender-jobs-server")  # waits until ready
    job_id = send_selected(session.client, "remesh.py", bpy.context.selected_objects,
                           passed_data={"duration": 0.5}, timeout=60)
    ...
    for event in poll(session.events):       # main thread, e.g. from a timer
        ...                                  # Event(method, params) from the client's callbacks
    loaded = load_data_blocks(session.client, job_id, replace=True)

The UI does not wait: :func:`start_session` starts the server on a background thread (the panel
says "starting"), and :meth:`Session.submit` queues a prepared job (:func:`prepare_job`, which
writes the inputs on the main thread) for that thread to send once the server is ready.

Threading rule: the client delivers notifications on its own dispatcher thread, and the session's
thread starts the server, sends jobs and follows logs (:meth:`Session.follow_log`). They only put
:class:`Event` tuples into the session's ``queue.Queue`` (and set plain status fields); everything
that touches ``bpy`` or the job list happens on Blender's main thread, in :func:`poll` callers.
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
#: The checkout the add-on sits in when it runs from one (client-examples/blender-addon/).
_CHECKOUT = os.path.normpath(os.path.join(_HERE, "..", "..", ".."))

#: Final job states (the server never changes them again).
FINAL_STATES = frozenset(("COMPLETED", "FAILED", "CANCELED"))
#: States a job rests in until someone acts: the final ones plus INTERRUPTED (the server stopped
#: while the job was queued or running; :func:`resume_job` runs it again).
RESTING_STATES = FINAL_STATES | frozenset(("INTERRUPTED",))

#: Lines of a job's console its box keeps and shows (its log file has all of it).
LOG_LINES = 6
#: Longest console line kept (longer ones are cut for the panel).
LOG_LINE_CHARS = 200

#: States of following a job's console (:attr:`JobInfo.follow`; None: not followed).
FOLLOW_ASKED, FOLLOW_ON, FOLLOW_STOPPING, FOLLOW_DONE, FOLLOW_FAILED = "asked", "on", "stopping", "done", "failed"

#: One notification from the server (or from the session's thread: ``addon/...``), as queued.
Event = collections.namedtuple("Event", "method params")

#: ``bpy.data`` collections the panel offers as passed data blocks: (collection, label, icon).
BLOCK_KINDS = (
    ("objects", "Object", "OBJECT_DATA"), ("meshes", "Mesh", "MESH_DATA"),
    ("materials", "Material", "MATERIAL"), ("collections", "Collection", "OUTLINER_COLLECTION"),
    ("node_groups", "Node Group", "NODETREE"), ("images", "Image", "IMAGE_DATA"),
    ("textures", "Texture", "TEXTURE"), ("curves", "Curve", "CURVE_DATA"),
    ("armatures", "Armature", "ARMATURE_DATA"), ("actions", "Action", "ACTION"),
    ("cameras", "Camera", "CAMERA_DATA"), ("lights", "Light", "LIGHT_DATA"),
    ("worlds", "World", "WORLD"), ("texts", "Text", "TEXT"), ("scenes", "Scene", "SCENE_DATA"),
)


# --------------------------------------------------------------------------- finding things

def import_client():
    """The ``blender_jobs_client`` module: the copy the add-on's zip ships inside the package,
    else one importable as it is, else the one of the checkout the add-on runs from
    (``client-examples/python``)."""
    try:
        from . import blender_jobs_client as module
        return module
    except ImportError:
        pass
    try:
        import blender_jobs_client as module
        return module
    except ImportError:
        pass
    folder = os.path.join(_CHECKOUT, "client-examples", "python")
    if not os.path.isfile(os.path.join(folder, "blender_jobs_client.py")):
        raise ImportError("blender_jobs_client.py is missing from the add-on: install the add-on from "
                          "blender_jobs_addon.zip, which `mvn package` builds with the client inside")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import blender_jobs_client as module
    return module


def find_server(server=None):
    """Where the server is (the client's ``ServerLocation``), looked up like every blender-jobs
    client does: ``server`` (the add-on's *Server* preference: a launcher, command or .jar), then
    $BLENDER_JOBS_SERVER, then ``blender-jobs-server`` on PATH, then the build output of a
    checkout (the one the add-on runs from, or the current folder's). Raises the client's
    ``ServerNotFound`` naming that order when none is found."""
    module = import_client()
    if server and server.startswith("//"):  # relative to the open .blend, as Blender's file fields are
        server = bpy.path.abspath(server)
    return module.find_server(server=server or None, checkouts=[_CHECKOUT], option="the add-on's Server preference")


def default_workspace():
    """The workspace the server keeps the add-on's jobs under (``rootUri`` of ``initialize``):
    the open .blend's folder when it is saved, else Blender's per-user config folder. Jobs and
    their results outlive Blender there (<data home>/blender-jobs/workspaces/<hash>)."""
    if bpy.data.filepath:
        return os.path.dirname(os.path.abspath(bpy.data.filepath))
    return bpy.utils.user_resource('CONFIG')


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

class Submission(object):
    """A job ready to send: its ``add_job`` keywords and the private folder holding its input
    files (the passed-blocks library, the copy of the open .blend), deleted once sent, because
    the server copies the inputs while ``addJob`` runs."""

    def __init__(self, params, folder, name, blocks):
        self.params = params
        self.folder = folder
        self.name = name
        self.blocks = blocks  # {collection: [names]} sent as passed data blocks

    def cleanup(self):
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def prepare_job(script, blocks=None, use_blend_file=False, passed_data=None, timeout=0, name=None,
                max_attempts=None):
    """Writes a job's inputs (main thread: it uses ``bpy``) and returns a :class:`Submission`.

    ``blocks``: ``{bpy.data collection name: [ID, ...]}`` (objects, meshes, materials,
    collections...), written to a temporary .blend library with ``bpy.data.libraries.write`` and
    passed as ``passedDataBlocks`` (the script gets them in ``passed_data_blocks``).
    ``use_blend_file``: run the script in a copy of the open file, as it is now (unsaved changes
    included): saved with ``bpy.ops.wm.save_as_mainfile(copy=True)``, so the user's file and its
    path stay untouched, and passed as ``blendFile``. ``passed_data``: a JSON-able dict whose keys
    become globals; ``timeout``: seconds per attempt (0 = none); ``max_attempts``: retries.
    The files live in a private folder made with ``tempfile.mkdtemp``."""
    script = os.path.abspath(bpy.path.abspath(script or ""))
    if not os.path.isfile(script):
        raise ValueError("the script %r does not exist" % script)
    if passed_data is not None and not isinstance(passed_data, dict):
        raise ValueError("passed data must be a JSON object (a dict), got %s" % type(passed_data).__name__)
    chosen = collections.OrderedDict()
    for kind, ids in (blocks or {}).items():
        ids = [block for block in ids if block is not None]
        if ids:
            chosen[kind] = ids
    for ob in chosen.get("objects", ()):
        if getattr(ob, "mode", None) == 'EDIT':
            ob.update_from_editmode()  # send what the user sees, not the last object-mode state
    folder = tempfile.mkdtemp(prefix="blender-jobs-addon-")
    try:
        params = {"script": script, "name": name, "timeout": timeout, "passed_data": passed_data,
                  "max_attempts": max_attempts}
        names = {}
        if chosen:
            library = os.path.join(folder, "passed.blend")
            bpy.data.libraries.write(library, set(b for ids in chosen.values() for b in ids), fake_user=True)
            names = dict((kind, sorted(set(b.name for b in ids))) for kind, ids in chosen.items())
            params["passed_data_blocks"] = {"library": library, "names": names}
        if use_blend_file:
            copy = os.path.join(folder, os.path.basename(bpy.data.filepath) or "untitled.blend")
            result = bpy.ops.wm.save_as_mainfile(filepath=copy, copy=True, check_existing=False)
            if 'FINISHED' not in result or not os.path.isfile(copy):
                raise RuntimeError("could not save a copy of the open file to %s" % copy)
            params["blend_file"] = copy
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Submission(params, folder, name, names)


def send_job(client, submission):
    """Sends a prepared job (``addJob``) and deletes its input files; returns the job id."""
    try:
        return client.add_job(**submission.params)["jobId"]
    finally:
        submission.cleanup()


def send_selected(client, script, objects, passed_data=None, timeout=0, name=None, max_attempts=None,
                  use_blend_file=False, blocks=None):
    """Writes ``objects`` (plus ``blocks``, ``{collection: [ID, ...]}``) to a temporary .blend
    library and queues ``script`` with them as ``passedDataBlocks`` (``{"library": ...,
    "names": {"objects": [...], ...}}``); with ``use_blend_file`` the job runs in a copy of the open
    file. Returns the job id. Waits for ``addJob``'s answer (the UI uses :meth:`Session.submit`)."""
    objects = [ob for ob in objects if ob is not None]
    if not objects:
        raise ValueError("no objects to send: select at least one object")
    all_blocks = dict(blocks or {})
    all_blocks["objects"] = list(all_blocks.get("objects", [])) + objects
    return send_job(client, prepare_job(script, all_blocks, use_blend_file, passed_data, timeout, name, max_attempts))


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
        self.job_id = job_id       # "pending-N" until the server has answered addJob
        self.name = name or job_id
        self.state = "QUEUED"
        self.progress = 0.0
        self.message = ""
        self.attempt = 0
        self.error = None          # ErrorInfo dict of the latest failure (with its traceback)
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
        # Following its console (Session.follow_log): None, FOLLOW_ASKED (followLog sent),
        # FOLLOW_ON (job/log applied), FOLLOW_STOPPING (unfollowLog sent), FOLLOW_DONE (the
        # answer said the job already rests) or FOLLOW_FAILED (the server cannot: not again).
        self.follow = None
        self._log_early = []       # job/log texts that came before the followLog answer

    @property
    def following(self):
        """Its console is followed (asked for, or job/log events applied)."""
        return self.follow in (FOLLOW_ASKED, FOLLOW_ON)

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

    @property
    def submitting(self):
        """Prepared and waiting for the server (starting) or for addJob's answer."""
        return self.state == "SUBMITTING"

    def error_text(self):
        if self.load_error:
            return "loading failed: %s" % self.load_error
        if self.error:
            return "%s: %s" % (self.error.get("kind", "?"), self.error.get("message", ""))
        return ""

    def __repr__(self):
        return "JobInfo(%s, %s, %.0f%%)" % (self.job_id, self.state, self.progress * 100)


class JobTracker(object):
    """The job list and counters shown in the panel, fed by :func:`poll` events. Main thread only."""

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
            if not isinstance(params, dict):
                continue
            if method == "addon/added":     # the server answered a pending job's addJob
                info = self._rekey(params["key"], params["jobId"])
                if info.completed_early:
                    completed.append(info)
                continue
            if method == "addon/notAdded":  # the pending job could not be sent
                info = self.jobs.get(params["key"])
                if info is not None:
                    info.state = "FAILED"
                    info.error = {"kind": params.get("kind", "NOT_SENT"), "message": params.get("message", "")}
                continue
            if "jobId" not in params:
                continue
            if method == "job/removed":   # removeJob, replaceExisting or the server's retention
                self.jobs.pop(params["jobId"], None)
                continue
            if method == "job/log":       # a followed job printed (before its resting state change)
                info = self.jobs.get(params["jobId"])
                if info is not None and info.follow == FOLLOW_ON:
                    info.append_log(params.get("text") or "")
                elif info is not None and info.follow == FOLLOW_ASKED:
                    # The client's callbacks and the session's thread queue events independently:
                    # what the job printed after the followLog answer may come before that answer.
                    info._log_early.append(params.get("text") or "")
                continue
            if method == "addon/followed":   # the session's thread has the followLog answer
                info = self.jobs.get(params["jobId"])
                if info is not None and info.follow == FOLLOW_ASKED:
                    if params.get("error"):
                        info.follow = FOLLOW_FAILED
                    else:
                        info.set_log(params.get("text") or "")
                        for text in info._log_early:
                            info.append_log(text)
                        info.follow = FOLLOW_ON if params.get("following") and not info.resting else FOLLOW_DONE
                if info is not None:
                    info._log_early = []
                continue
            if method == "addon/unfollowed":  # no job/log of the job comes after this
                info = self.jobs.get(params["jobId"])
                if info is not None and info.follow == FOLLOW_STOPPING:
                    info.follow = None
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
                    if info.follow == FOLLOW_DONE:
                        info.follow = None                  # a resumed job is a new log to follow
                info.state = state
                if state in RESTING_STATES and info.follow == FOLLOW_ON:
                    info.follow = None                      # the server sends no more of its log
                info.attempt = params.get("attempt", info.attempt)
                if params.get("error") is not None:
                    info.error = params["error"]
                if state == "COMPLETED":
                    info.progress = 1.0
                    info.error = None
                    completed.append(info)
        return completed

    def _rekey(self, key, job_id):
        """A pending entry gets its job id. Notifications of the job may have come first and made
        an entry of their own: the pending entry's settings move there, in the pending one's place."""
        pending = self.jobs.get(key)
        early = self.jobs.get(job_id)
        items = []
        for k, v in self.jobs.items():
            if k == job_id and pending is not None:
                continue
            items.append((job_id, v) if k == key else (k, v))
        self.jobs = collections.OrderedDict(items)
        if pending is None:
            info = early or self.add(job_id)
            info.completed_early = False
            return info
        pending.job_id = job_id
        pending.completed_early = False
        if early is not None:  # keep what the server said, and the settings the panel gave
            pending.state, pending.progress, pending.message = early.state, early.progress, early.message
            pending.attempt, pending.error = early.attempt, early.error
            pending.follow, pending._log_early = early.follow, early._log_early
            pending.log_lines, pending._log_partial = early.log_lines, early._log_partial
            pending.completed_early = early.state == "COMPLETED"
        elif pending.state == "SUBMITTING":
            pending.state = "QUEUED"
        self.jobs[job_id] = pending
        return pending

    def mark_lost(self, reason):
        """Marks every queued or running job FAILED (the server went away without saying what
        became of them). Interrupted jobs stay interrupted; jobs not sent yet stay pending."""
        for info in self.jobs.values():
            if not info.resting and not info.submitting:
                info.state = "FAILED"
                info.error = {"kind": "SERVER_EXITED", "message": reason}

    def adopt(self, summaries):
        """Tracks jobs the server lists (``listJobs`` summaries): the jobs an earlier server left in
        the state directory (finished ones with their results, INTERRUPTED ones to resume), so the
        panel shows them after a restart of Blender. Oldest first. Returns their JobInfos."""
        adopted = []
        for job in sorted(summaries, key=lambda j: (j.get("createdAt") or 0, j["jobId"])):
            known = job["jobId"] in self.jobs
            info = self.add(job["jobId"], job.get("name"))
            lost = (info.error or {}).get("kind") == "SERVER_EXITED"  # mark_lost guessed; the server knows
            if known and info.state != "INTERRUPTED" and not lost:
                continue
            info.state = job.get("state", info.state)
            info.progress = float(job.get("progress", 0.0))
            info.attempt = job.get("attempt", info.attempt)
            if not known:
                info.auto_load = False  # its results were there before this session: Load loads them
            if job.get("errorKind") == "INTERRUPTED":
                info.error = {"kind": "INTERRUPTED",
                              "message": "the server stopped before the job finished; Resume runs it again"}
            elif job.get("errorKind") and info.error is None:
                info.error = {"kind": job["errorKind"], "message": "Details shows the error and the log"}
            adopted.append(info)
        return adopted

    def counts(self):
        """{queued, running, completed, failed, canceled, interrupted, total}, as in the panel
        (jobs not sent yet count as queued)."""
        counts = dict(queued=0, running=0, completed=0, failed=0, canceled=0, interrupted=0)
        key = {"QUEUED": "queued", "SUBMITTING": "queued", "ACTIVE": "running", "COMPLETED": "completed",
               "FAILED": "failed", "CANCELED": "canceled", "INTERRUPTED": "interrupted"}
        for info in self.jobs.values():
            counts[key.get(info.state, "failed")] += 1
        counts["total"] = len(self.jobs)
        return counts

    def busy(self):
        """True while a job is pending, queued or running (the timer then ticks fast)."""
        return any(not info.resting for info in self.jobs.values())

    def remove(self, job_id):
        self.jobs.pop(job_id, None)


JobInfo.completed_early = False


# --------------------------------------------------------------------------- the server session

STARTING, READY, FAILED, STOPPED = "starting", "ready", "failed", "stopped"


class Session(object):
    """The one server of this Blender session: its client, its event queue, its job list, and the
    thread that starts the server (without blocking the UI) and then sends submitted jobs.

    ``status`` is STARTING until the server answered ``initialize`` (then READY), FAILED with
    ``error`` (a message for people, e.g. the server lookup order) if it could not start, STOPPED
    once shut down. The job list (``tracker``) belongs to the main thread."""

    def __init__(self, options):
        self.options = dict(options)
        self.client = None
        self.status = STARTING
        self.error = None           # why the server could not start (text)
        self.exception = None
        self.info = None            # the initialize result
        self.events = queue.Queue()
        self.tracker = JobTracker()
        self.server_message = None  # the latest window/showMessage params: {type, message, kind}
        self.started_at = time.monotonic()
        self._ready = threading.Event()
        self._startup_jobs = None   # listJobs of the state directory, adopted on the main thread
        self._outbox = queue.Queue()
        self._pending_ids = 0
        self._thread = threading.Thread(target=self._run, name="blender-jobs-addon-session")
        self._thread.daemon = True

    # -- main thread

    def start(self):
        self._thread.start()
        return self

    def alive(self):
        return self.status == READY and self.client is not None and self.client.is_alive()

    def wait_ready(self, timeout=None):
        """Blocks until the server is ready (scripts and tests); raises why it could not start."""
        if not self._ready.wait(timeout):
            raise TimeoutError("the blender-jobs server did not start within %s s" % timeout)
        if self.status == FAILED:
            raise self.exception
        self.adopt_startup_jobs()
        return self

    def adopt_startup_jobs(self):
        """Main thread: track the jobs the state directory held when the server started."""
        jobs, self._startup_jobs = self._startup_jobs, None
        if jobs:
            self.tracker.adopt(jobs)

    def submit(self, submission, **attrs):
        """Queues a prepared job for the session's thread, which sends it once the server is ready
        (and deletes its input files). Returns the pending JobInfo ("pending-N", state SUBMITTING),
        re-keyed with the job id when the ``addon/added`` event is applied."""
        self._pending_ids += 1
        key = "pending-%d" % self._pending_ids
        info = self.tracker.add(key, submission.name, **attrs)
        info.state = "SUBMITTING"
        self._outbox.put(("add", key, submission))
        return info

    def follow_log(self, info):
        """Follows a job's console without waiting: the session's thread sends ``followLog``, and
        :meth:`JobTracker.apply` then sets ``info.log_lines`` from the answer (``addon/followed``)
        and adds what the job prints next (``job/log``) until it rests."""
        info.follow = FOLLOW_ASKED
        info._log_early = []
        self._outbox.put(("follow", info.job_id))

    def unfollow_log(self, info):
        """Stops following a job's console (``unfollowLog``, sent by the session's thread); the
        lines shown so far stay. Its job/log events are ignored from now on."""
        info.follow = FOLLOW_STOPPING
        self._outbox.put(("unfollow", info.job_id))

    def stop(self, timeout=10.0):
        """Shuts the server down (unfinished jobs become INTERRUPTED); returns its exit code."""
        self.status = STOPPED if self.status != FAILED else FAILED
        self._outbox.put(None)
        client = self.client
        if client is None:
            return None
        return client.close(timeout=timeout, kill_after=5.0)

    # -- the session's thread

    def _run(self):
        try:
            module = import_client()
            options = dict(self.options)
            location = options.pop("location")
            client = module.BlenderJobsClient(server=location, **options)
            connect_events(client, self.events)
            try:
                info = client.initialize()
                blender = info.get("blender") or {}
                if not blender.get("available", False):
                    raise RuntimeError("the blender-jobs server has no usable Blender: %s" % (
                        blender.get("problem") or "unknown reason"))
                self._startup_jobs = client.list_jobs()["jobs"]
            except BaseException:
                client.close(timeout=2.0, kill_after=2.0)
                raise
            self.info = info
            self.client = client
            self.status = READY if self.status == STARTING else self.status
        except BaseException as exc:  # noqa: B902 - the panel shows it
            self.exception = exc
            self.error = "%s" % (exc,)
            self.status = FAILED
            self._ready.set()
            self.events.put(Event("addon/failed", {"message": self.error}))
            self._fail_outbox("the server did not start: %s" % exc)
            return
        self._ready.set()
        self.events.put(Event("addon/ready", {}))
        if self.status == STOPPED:  # stopped while it was starting
            client.close(timeout=5.0, kill_after=5.0)
            self._fail_outbox("the server was stopped")
            return
        while True:
            item = self._outbox.get()
            if item is None:
                break
            if item[0] == "follow":
                self._follow(client, item[1])
                continue
            if item[0] == "unfollow":
                self._unfollow(client, item[1])
                continue
            key, submission = item[1:]
            try:
                job_id = send_job(client, submission)
            except Exception as exc:  # noqa: B902 - shown on the job's box
                self.events.put(Event("addon/notAdded", {"key": key, "message": str(exc),
                                                         "kind": getattr(exc, "error_kind", None) or "NOT_SENT"}))
            else:
                self.events.put(Event("addon/added", {"key": key, "jobId": job_id}))
        self._fail_outbox("the server was stopped")

    def _follow(self, client, job_id):
        try:
            result = client.follow_log(job_id)
        except Exception as exc:  # noqa: B902 - e.g. a server without followLog: the box shows no lines
            print("blender-jobs: could not follow the log of %s: %s" % (job_id, exc))
            self.events.put(Event("addon/followed", {"jobId": job_id, "error": str(exc)}))
        else:
            self.events.put(Event("addon/followed", {"jobId": job_id, "text": result.get("text") or "",
                                                     "following": bool(result.get("following"))}))

    def _unfollow(self, client, job_id):
        try:
            client.unfollow_log(job_id)
        except Exception as exc:  # noqa: B902 - the job's events are ignored anyway
            print("blender-jobs: could not stop following the log of %s: %s" % (job_id, exc))
        # The server sends no job/log of the job after this answer, and the client's callbacks
        # have queued what came before it by now (they only put events, and the answer came
        # after them); until this event arrives, the job's job/log events are ignored. (One
        # delivered later still would show a line twice in the box, never lose one.)
        self.events.put(Event("addon/unfollowed", {"jobId": job_id}))

    def _fail_outbox(self, reason):
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                return
            if item is None:
                continue
            if item[0] == "follow":
                self.events.put(Event("addon/followed", {"jobId": item[1], "error": reason}))
            elif item[0] == "unfollow":
                self.events.put(Event("addon/unfollowed", {"jobId": item[1]}))
            else:
                key, submission = item[1:]
                submission.cleanup()
                self.events.put(Event("addon/notAdded", {"key": key, "message": reason}))


try:        # keep the running server across a script reload (importlib.reload of this module)
    _session
except NameError:
    _session = None
_session_lock = threading.Lock()


def current_session():
    """The session (starting, ready or failed), or None (never starts one)."""
    return _session


def session_options(server=None, workers=None, blender=None, java=None, server_args=None, state_dir=None,
                    workspace=None):
    """The BlenderJobsClient options of a session; finds the server (raises ServerNotFound)."""
    if not blender:
        blender = bpy.app.binary_path or None  # the workers run this Blender's version
    if state_dir:
        state_dir = os.path.abspath(bpy.path.abspath(state_dir))
    return {"location": find_server(server), "workers": workers or None, "blender": blender,
            "java": java or None, "server_args": server_args, "state_dir": state_dir or None,
            "workspace": None if state_dir else (workspace or default_workspace())}


def start_session(**kwargs):
    """Returns the session, starting one (on a background thread: this returns at once, with the
    session STARTING) if there is none, or the last one failed or its server died. Keywords as
    :func:`session_options`. A server that cannot be found makes a FAILED session at once, whose
    ``error`` names the lookup order."""
    global _session
    with _session_lock:
        session = _session
        if session is not None and session.status in (STARTING, READY) and (
                session.status == STARTING or session.alive()):
            return session
    old = session
    if old is not None:
        old.stop(timeout=2.0)
    try:
        options = session_options(**kwargs)
    except Exception as exc:
        session = Session({})
        session.status, session.exception, session.error = FAILED, exc, str(exc)
        session._ready.set()
    else:
        session = Session(options)
        session.start()
    if old is not None:  # keep the panel's list: jobs the dead server ran, and jobs not sent yet
        old.tracker.mark_lost("the server exited; it was restarted")
        session.tracker.jobs.update(old.tracker.jobs)
        for key, info in list(session.tracker.jobs.items()):
            if info.submitting:  # its submission died with the old session's thread
                info.state = "FAILED"
                info.error = {"kind": "NOT_SENT", "message": "the server stopped before the job was sent; run it again"}
    with _session_lock:
        _session = session
    return session


def get_session(server=None, workers=None, blender=None, java=None, server_args=None, state_dir=None,
                workspace=None, timeout=120.0):
    """Returns the session's server once it is ready, starting it the first time (or again if it
    died or failed). For scripts and tests; the UI uses :func:`start_session` and does not wait.

    ``server``: the server command (default: the lookup of :func:`find_server`). ``blender``
    defaults to this Blender (``bpy.app.binary_path``). Jobs are kept across Blender restarts in
    the state directory of ``workspace`` (default :func:`default_workspace`), or in ``state_dir``
    (``--state-dir``); the session lists the jobs found there (``session.tracker``): finished ones
    with their results, and INTERRUPTED ones to resume. Raises the client's ``ServerNotFound`` (its
    message names the lookup order) or why the server did not start."""
    session = start_session(server=server, workers=workers, blender=blender, java=java,
                            server_args=server_args, state_dir=state_dir, workspace=workspace)
    return session.wait_ready(timeout)


def shutdown_session(timeout=10.0):
    """Shuts the server down (``shutdown`` + ``exit``; waits for it, kills it if it hangs); its
    queued and running jobs become INTERRUPTED (resumable by the next server of the same state
    directory). Returns the server's exit code, or None if none was running. Safe to call
    repeatedly."""
    global _session
    with _session_lock:
        session, _session = _session, None
    if session is None:
        return None
    return session.stop(timeout=timeout)


def parse_passed_data(text):
    """Parses the panel's 'Passed Data' text: empty → None, else a JSON object (dict)."""
    text = (text or "").strip()
    if not text:
        return None
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("passed data must be a JSON object such as {\"duration\": 0.5}")
    return value
