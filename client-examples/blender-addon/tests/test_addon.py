"""End-to-end tests of the blender_jobs_addon: the REAL server jar and REAL Blender workers.

Run (from the repository root):

    blender -b --factory-startup --python-exit-code 1 \\
        --python client-examples/blender-addon/tests/test_addon.py

The jar comes from $BLENDER_JOBS_JAR, else server/target/blender-jobs-server.jar; a missing jar
is a failure, not a skip. Modal operators and timers do not run in background Blender, so the
tests call the add-on's plain functions (core.send_selected / core.poll / core.load_data_blocks)
and one timer step (ui.process_events) directly. Prints "N passed, M failed" and exits 1 on
any failure.
"""

import json
import os
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ADDON_ROOT = os.path.dirname(HERE)                              # client-examples/blender-addon
REPO = os.path.dirname(os.path.dirname(ADDON_ROOT))
JOBS = os.path.join(REPO, "test-fixtures", "jobs")
JAR = os.path.abspath(os.environ.get("BLENDER_JOBS_JAR")
                      or os.path.join(REPO, "server", "target", "blender-jobs-server.jar"))
os.environ["BLENDER_JOBS_JAR"] = JAR  # the add-on's default jar
WAIT = 180.0

sys.path.insert(0, ADDON_ROOT)

import bpy  # noqa: E402

import blender_jobs_addon  # noqa: E402
from blender_jobs_addon import core, ui  # noqa: E402


# --------------------------------------------------------------------------- helpers

def check(condition, message):
    if not condition:
        raise AssertionError(message)


def equal(actual, expected, what):
    if actual != expected:
        raise AssertionError("%s: expected %r, got %r" % (what, expected, actual))


def raises(error_name, action, what):
    """Runs action, which must raise the client's error of that class name."""
    try:
        action()
    except Exception as exc:
        equal(type(exc).__name__, error_name, what)
    else:
        raise AssertionError("%s did not raise %s" % (what, error_name))


def make_mesh_object(name, verts, faces, mesh_name=None):
    mesh = bpy.data.meshes.new(mesh_name or name + "Mesh")
    mesh.from_pydata(verts, [], faces)
    mesh.update()
    ob = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(ob)
    return ob


CUBE_VERTS = [(-1, -1, -1), (1, -1, -1), (1, 1, -1), (-1, 1, -1),
              (-1, -1, 1), (1, -1, 1), (1, 1, 1), (-1, 1, 1)]
CUBE_FACES = [(0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)]


def select_only(*objects):
    for ob in bpy.context.view_layer.objects:
        ob.select_set(False)
    for ob in objects:
        ob.select_set(True)
    bpy.context.view_layer.objects.active = objects[0] if objects else None


def objects_named(prefix):
    return sorted(ob.name for ob in bpy.data.objects if ob.name.startswith(prefix))


def session():
    return core.get_session(workers=2)


def run_tracked(sess, script, name, auto_load):
    """Sends the Sender object with a fixture script, tracks the job and waits until it is final."""
    job_id = core.send_selected(sess.client, os.path.join(JOBS, script), [bpy.data.objects["Sender"]], name=name)
    sess.tracker.add(job_id, name, auto_load=auto_load)
    return wait_tracked(sess, job_id, lambda i: i.final)


def wait_tracked(sess, job_id, predicate, timeout=WAIT):
    """Runs timer steps (ui.process_events) until predicate(JobInfo) holds. ``job_id`` may be a
    JobInfo (e.g. a pending one, whose id changes when the server answers)."""
    deadline = time.monotonic() + timeout
    while True:
        ui.process_events(sess)
        info = job_id if isinstance(job_id, core.JobInfo) else sess.tracker.jobs.get(job_id)
        if info is not None and predicate(info):
            return info
        if time.monotonic() > deadline:
            raise AssertionError("job %s: condition not reached within %ss (last: %r)" % (job_id, timeout, info))
        time.sleep(0.05)


def proc_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (IOError, OSError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def server_processes_of_this_blender():
    """pids of java processes running the jar whose parent is this Blender."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read().split(b"\0")
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (IOError, OSError, ValueError, IndexError):
            continue
        if ppid == me and any(JAR.encode() in part for part in cmd) and proc_alive(int(entry)):
            found.append(int(entry))
    return found


def addon_temp_dirs():
    tmp = tempfile.gettempdir()
    return set(n for n in os.listdir(tmp) if n.startswith("blender-jobs-addon-"))


class FakeLayout(object):
    """Stands in for bpy.types.UILayout to run the panel's draw() in background mode."""

    def __init__(self, log, with_progress):
        self.log = log
        if with_progress:
            self.progress = lambda **kw: log.append(("progress", kw.get("factor"), kw.get("text")))

    def _child(self, *args, **kwargs):
        return self

    row = column = box = split = grid_flow = _child

    def label(self, text="", **kwargs):
        self.log.append(("label", text))

    def prop(self, data, attr, **kwargs):
        check(hasattr(data, attr), "panel draws a missing property %r" % attr)
        self.log.append(("prop", attr))

    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        check(hasattr(getattr(bpy.ops, module), name), "panel draws a missing operator %s" % idname)
        self.log.append(("operator", idname))

        class Props(object):
            pass
        return Props()

    def separator(self, **kwargs):
        pass

    def prop_search(self, data, attr, search_data, search_attr, **kwargs):
        check(hasattr(data, attr) and hasattr(search_data, search_attr), "prop_search of %r" % attr)
        self.log.append(("prop", attr))

    def operator_menu_enum(self, idname, prop, **kwargs):
        self.operator(idname)


# --------------------------------------------------------------------------- tests

STATE = {}


def test_register_in_background():
    check(os.path.isfile(JAR), "server jar not found at %s; build it with `mvn -q package "
                               "-Dmaven.test.skip=true` or set BLENDER_JOBS_JAR" % JAR)
    blender_jobs_addon.register()
    check(hasattr(bpy.types, "BLENDER_JOBS_OT_run_job"), "run_job operator registered")
    check(hasattr(bpy.types, "BLENDER_JOBS_PT_panel"), "panel registered")
    check(hasattr(bpy.ops.blender_jobs, "cancel_job"), "cancel operator registered")
    settings = bpy.context.scene.blender_jobs
    equal(settings.auto_load, True, "default auto_load")
    equal(settings.replace_existing, False, "default replace_existing")
    check(bpy.app.timers.is_registered(ui.tick), "the UI timer is registered")
    check(core.current_session() is None, "no server before the first job (lazy start)")
    equal(ui.tick(), ui.TIMER_INTERVAL_IDLE, "tick without a server")


def test_bad_inputs_are_rejected_before_the_server():
    for args, what in ((("/nonexistent/script.py", [bpy.data.objects[0]]), "missing script"),
                       ((os.path.join(JOBS, "bmesh_quad.py"), []), "no objects")):
        try:
            core.send_selected(None, *args)
        except ValueError:
            pass
        else:
            raise AssertionError("%s was accepted" % what)
    equal(core.parse_passed_data("  "), None, "blank passed data")
    equal(core.parse_passed_data('{"duration": 0.5}'), {"duration": 0.5}, "passed data")
    for bad in ("[1, 2]", "{nope"):
        try:
            core.parse_passed_data(bad)
        except ValueError:
            pass
        else:
            raise AssertionError("passed data %r was accepted" % bad)
    check(core.current_session() is None, "still no server")


def test_send_selected_poll_load_bmesh_quad():
    sender = make_mesh_object("Sender", CUBE_VERTS, CUBE_FACES)
    other = make_mesh_object("NotSelected", CUBE_VERTS, CUBE_FACES)
    select_only(sender)
    temp_before = addon_temp_dirs()
    sess = session()
    check(core.get_session(workers=2) is sess, "one server per Blender session")
    STATE["server_pid"] = sess.client.pid
    client = sess.client

    job_id = core.send_selected(client, os.path.join(JOBS, "bmesh_quad.py"), bpy.context.selected_objects,
                                timeout=120, name="quad")
    check(job_id.startswith("job-"), "job id %r" % job_id)
    equal(addon_temp_dirs() - temp_before, set(), "temporary library directories left behind")
    final = client.wait_for_job(job_id, timeout=WAIT)
    equal(final["state"], "COMPLETED", "final state (error: %s)" % final.get("error"))

    # wait_for_job returns after every callback up to COMPLETED ran: the queue holds them all
    events = core.poll(sess.events)
    mine = [e for e in events if e.params.get("jobId") == job_id]
    states = [e.params["state"] for e in mine if e.method == "job/stateChanged"]
    equal(states, ["QUEUED", "ACTIVE", "COMPLETED"], "state notifications")
    progress = [e.params["progress"] for e in mine if e.method == "job/progress"]
    check(progress and progress[-1] == 1.0, "progress notifications end at 1.0: %r" % progress[-5:])
    check(progress == sorted(progress), "progress only grows")
    equal(core.poll(sess.events), [], "the queue is drained")
    completed = sess.tracker.apply(events)
    equal([info.job_id for info in completed], [job_id], "tracker: completed jobs")
    info = sess.tracker.jobs[job_id]
    equal((info.state, info.progress, info.name), ("COMPLETED", 1.0, "quad"), "tracked job")
    equal(sess.tracker.counts()["completed"], 1, "completed counter")

    equal(client.get_python_data(job_id), {"faces_before": 6, "faces_after": 7}, "python_data")
    loaded = core.load_data_blocks(client, job_id)
    equal([b.name for b in loaded], ["Sender_quad"], "loaded blocks")
    quad = bpy.data.objects["Sender_quad"]
    check(quad in loaded, "the returned block is the object in bpy.data")
    equal(len(quad.data.polygons), 7, "faces of the loaded object (faces_after)")
    equal(len(quad.data.vertices), 12, "vertices of the loaded object")
    check(quad.name in bpy.context.scene.collection.objects, "loaded object linked into the scene collection")
    equal(quad.use_fake_user, False, "no leftover fake user on a linked object")
    equal(len(bpy.data.objects["Sender"].data.polygons), 6, "the sender is unchanged")
    check("NotSelected_quad" not in bpy.data.objects and other.name == "NotSelected",
          "only the selected object was sent")
    bpy.data.objects.remove(other)


def test_load_without_replace_keeps_both():
    sess = session()
    sender = bpy.data.objects["Sender"]
    select_only(sender)
    job_id = core.send_selected(sess.client, os.path.join(JOBS, "bmesh_quad.py"), [sender])
    equal(sess.client.wait_for_job(job_id, timeout=WAIT)["state"], "COMPLETED", "state")
    loaded = core.load_data_blocks(sess.client, job_id, replace=False)
    equal([b.name for b in loaded], ["Sender_quad.001"], "a second copy gets a suffix")
    equal(objects_named("Sender_quad"), ["Sender_quad", "Sender_quad.001"], "both objects exist")
    extra_mesh = loaded[0].data
    bpy.data.objects.remove(loaded[0])
    bpy.data.meshes.remove(extra_mesh)
    equal(objects_named("Sender_quad"), ["Sender_quad"], "cleanup")


def test_load_with_replace_swaps_existing_object():
    sess = session()
    old = bpy.data.objects["Sender_quad"]
    equal(len(old.data.polygons), 7, "the existing object before replacing")
    old_mesh_name = old.data.name
    # put the existing result into its own collection: the replacement must take its place
    results = bpy.data.collections.new("Results")
    bpy.context.scene.collection.children.link(results)
    results.objects.link(old)
    bpy.context.scene.collection.objects.unlink(old)
    # change the sender to a single quad, so the new result has 2 faces instead of 7
    sender = bpy.data.objects["Sender"]
    old_sender_mesh = sender.data
    plane = bpy.data.meshes.new("PlaneMesh")
    plane.from_pydata([(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)], [], [(0, 1, 2, 3)])
    sender.data = plane
    bpy.data.meshes.remove(old_sender_mesh)
    select_only(sender)

    job_id = core.send_selected(sess.client, os.path.join(JOBS, "bmesh_quad.py"), [sender])
    equal(sess.client.wait_for_job(job_id, timeout=WAIT)["state"], "COMPLETED", "state")
    equal(sess.client.get_python_data(job_id)["faces_after"], 2, "faces_after of the new result")
    meshes_before = len(bpy.data.meshes)
    loaded = core.load_data_blocks(sess.client, job_id, replace=True)

    equal([b.name for b in loaded], ["Sender_quad"], "the new object takes the name")
    equal(objects_named("Sender_quad"), ["Sender_quad"], "only one object with that name remains")
    check(not objects_named("~replaced~"), "no renamed-aside object left")
    new = bpy.data.objects["Sender_quad"]
    equal(len(new.data.polygons), 2, "the remaining object holds the new geometry")
    equal(len(new.data.vertices), 8, "new vertices")
    equal([c.name for c in new.users_collection], ["Results"], "the new object took the old one's place")
    check(new.name not in bpy.context.scene.collection.objects, "not also linked to the scene collection")
    equal(new.data.name, old_mesh_name, "the new mesh took the removed mesh's name")
    equal(len(bpy.data.meshes), meshes_before, "the old mesh was removed (one in, one out)")
    check(not [m for m in bpy.data.meshes if m.name.startswith("~replaced~")], "no renamed-aside mesh left")


def test_operator_and_timer_step_load_results():
    sess = session()
    settings = bpy.context.scene.blender_jobs
    settings.script = os.path.join(JOBS, "remesh.py")
    settings.passed_data = '{"duration": 0.2}'
    settings.timeout = 120
    settings.auto_load = True
    settings.replace_existing = False
    select_only(bpy.data.objects["Sender"])
    known = set(sess.tracker.jobs)
    check(bpy.ops.blender_jobs.run_job.poll(), "run_job is available with a selection")
    equal(bpy.ops.blender_jobs.run_job(), {'FINISHED'}, "run_job operator")
    new_ids = [j for j in sess.tracker.jobs if j not in known]
    equal(len(new_ids), 1, "the operator tracks one new job")
    info = sess.tracker.jobs[new_ids[0]]
    check(new_ids[0].startswith("pending-") and info.state == "SUBMITTING",
          "the operator only queues the job for the session's thread: %r" % info)
    equal(info.name, "remesh.py: Sender", "job name")
    info = wait_tracked(sess, info, lambda i: i.final)
    job_id = info.job_id
    check(job_id.startswith("job-") and sess.tracker.jobs.get(job_id) is info, "re-keyed with the job id: %r" % info)
    equal(info.state, "COMPLETED", "state (%s)" % info.error_text())
    equal(info.load_error, None, "load error")
    equal(info.loaded, ["Sender_remeshed"], "the timer step loaded the result")
    data = sess.client.get_python_data(job_id)
    equal(data["name"], "Sender_remeshed", "python_data name")
    remeshed = bpy.data.objects["Sender_remeshed"]
    equal(len(remeshed.data.vertices), data["vertices"], "loaded vertices match python_data")
    check(data["vertices"] > 0, "remesh produced geometry")
    check(remeshed.name in bpy.context.scene.collection.objects, "linked into the scene")
    # the same through the Load Results button, replacing the loaded one
    settings.replace_existing = True
    equal(bpy.ops.blender_jobs.load_results(job_id=job_id), {'FINISHED'}, "load_results operator")
    equal(objects_named("Sender_remeshed"), ["Sender_remeshed"], "reloaded with replace")


def test_progress_and_cancel():
    sess = session()
    sender = bpy.data.objects["Sender"]
    job_id = core.send_selected(sess.client, os.path.join(JOBS, "timeout_loop.py"), [sender], name="long")
    sess.tracker.add(job_id, "long")
    info = wait_tracked(sess, job_id, lambda i: i.state == "ACTIVE" and 0.0 < i.progress < 1.0, timeout=60)
    equal(sess.tracker.counts()["running"], 1, "running counter")
    check(info.message.startswith("step "), "progress message %r" % info.message)
    equal(bpy.ops.blender_jobs.cancel_job(job_id=job_id), {'FINISHED'}, "cancel_job operator")
    equal(sess.client.wait_for_job(job_id, timeout=30)["state"], "CANCELED", "final state")
    info = wait_tracked(sess, job_id, lambda i: i.final, timeout=10)
    equal(info.state, "CANCELED", "tracked state")
    check(info.progress < 1.0, "progress stopped")
    equal(sess.tracker.counts()["running"], 0, "running counter after cancel")
    equal(sess.tracker.counts()["canceled"], 1, "canceled counter")
    equal(core.cancel_job(sess.client, job_id), False, "canceling a finished job does nothing")
    raises("JobCanceled", lambda: core.load_data_blocks(sess.client, job_id), "loading a canceled job")


def test_failed_job_is_tracked():
    sess = session()
    info = run_tracked(sess, "raises.py", "raises", auto_load=True)
    equal(info.state, "FAILED", "state")
    equal(info.error["kind"], "SCRIPT_ERROR", "error kind")
    check("fixture failure: expected" in info.error_text(), "error text %r" % info.error_text())
    equal(info.loaded, None, "nothing loaded for a failed job")
    equal(sess.tracker.counts()["failed"], 1, "failed counter")
    # Removed by someone else than the panel (another client, the retention policy): the
    # server's job/removed takes it off the list.
    sess.client.remove_job(info.job_id)
    deadline = time.monotonic() + WAIT
    while info.job_id in sess.tracker.jobs and time.monotonic() < deadline:
        ui.process_events(sess)
        time.sleep(0.05)
    check(info.job_id not in sess.tracker.jobs, "job/removed takes the job off the list")
    equal(sess.tracker.counts()["failed"], 0, "failed counter after removal")


def test_unsaved_job_states_are_shown_until_saved_again():
    sess = session()
    info = run_tracked(sess, "unsaved_record.py", "unsaved", auto_load=False)
    equal(info.state, "COMPLETED", "state (%s)" % info.error_text())
    warning = sess.server_message
    check(warning is not None and warning.get("kind") in ("RECORDS_NOT_SAVED", "RECORDS_SAVED_AGAIN"),
          "the server's message reached the session: %r" % (warning,))
    deadline = time.time() + 60
    while (sess.server_message or {}).get("kind") != "RECORDS_SAVED_AGAIN" and time.time() < deadline:
        ui.process_events(sess)
        time.sleep(0.05)
    equal(sess.server_message.get("kind"), "RECORDS_SAVED_AGAIN", "recovery reported")
    # While the warning stands, the panel shows it; once saved again, it does not.
    for message, shown in (({"type": 2, "message": "Could not save the state of job x", "kind": "RECORDS_NOT_SAVED"}, True),
                           (sess.server_message, False)):
        sess.server_message = message
        log = []
        ui.BLENDER_JOBS_PT_panel.draw(type("P", (), {"layout": FakeLayout(log, False)})(), bpy.context)
        text = " ".join(e[1].strip() for e in log if e[0] == "label")  # wrapped to the sidebar's width
        equal("Could not save the state of job x" in text, shown, "warning in the panel: %r" % log)


PRINTER = """import time
for i in range(1, 13):
    print("printer line %d" % i)
    update_job_progress(i / 12.0)
    time.sleep(0.25)
print("printer done")
"""


def draw_panel():
    """Runs the panel's draw() once (as Blender does while the sidebar shows it); returns its labels."""
    log = []
    ui.BLENDER_JOBS_PT_panel.draw(type("P", (), {"layout": FakeLayout(log, False)})(), bpy.context)
    return [entry[1] for entry in log if entry[0] == "label"]


def test_tracker_orders_log_events_around_the_follow_answer():
    """The client's callbacks and the session's thread queue events independently: job/log that
    came before the followLog answer is kept for it, job/log after unfollowLog is ignored."""
    E = core.Event
    tracker = core.JobTracker()
    info = tracker.add("job-a", "a")
    info.state = "ACTIVE"
    info.follow = core.FOLLOW_ASKED
    tracker.apply([E("job/log", {"jobId": "job-a", "text": "three\nfo"}),
                   E("addon/followed", {"jobId": "job-a", "text": "one\ntwo\n", "following": True}),
                   E("job/log", {"jobId": "job-a", "text": "ur\n"})])
    equal(info.follow, core.FOLLOW_ON, "following")
    equal(info.last_log_lines(), ["one", "two", "three", "four"], "the answer first, then what came early, then later")
    info.follow = core.FOLLOW_STOPPING
    tracker.apply([E("job/log", {"jobId": "job-a", "text": "five\n"})])
    equal(info.last_log_lines()[-1], "four", "nothing applied while unfollowLog is on its way")
    tracker.apply([E("addon/unfollowed", {"jobId": "job-a"})])
    equal(info.follow, None, "not followed once unfollowLog answered")

    info.follow = core.FOLLOW_ASKED
    tracker.apply([E("addon/followed", {"jobId": "job-a", "error": "Unsupported request method: followLog"})])
    equal(info.follow, core.FOLLOW_FAILED, "a server that cannot follow is not asked again")

    b = tracker.add("job-b", "b")
    b.state, b.follow = "ACTIVE", core.FOLLOW_ASKED
    tracker.apply([E("addon/followed", {"jobId": "job-b", "text": "all\n", "following": False})])
    equal((b.follow, b.last_log_lines()), (core.FOLLOW_DONE, ["all"]), "it already rested: its last lines, not again")
    tracker.apply([E("job/stateChanged", {"jobId": "job-b", "state": "INTERRUPTED", "attempt": 1}),
                   E("job/stateChanged", {"jobId": "job-b", "state": "QUEUED", "previousState": "INTERRUPTED",
                                          "attempt": 0})])
    equal(b.follow, None, "a resumed job is a new log to follow")
    b.state, b.follow = "ACTIVE", core.FOLLOW_ON
    tracker.apply([E("job/stateChanged", {"jobId": "job-b", "state": "COMPLETED", "previousState": "ACTIVE",
                                          "attempt": 1})])
    equal(b.follow, None, "following ends when the job rests")


def test_panel_shows_the_last_log_lines_of_a_running_job():
    sess = session()
    folder = tempfile.mkdtemp(prefix="bj-addon-printer-")
    try:
        script = os.path.join(folder, "printer.py")
        with open(script, "w") as f:
            f.write(PRINTER)
        job_id = core.send_selected(sess.client, script, [bpy.data.objects["Sender"]], name="printer")
        info = sess.tracker.add(job_id, "printer", auto_load=False)
        wait_tracked(sess, job_id, lambda i: i.state == "ACTIVE" and i.progress > 0, timeout=60)
        check(not info.following, "not followed while the panel is not shown")
        draw_panel()       # the sidebar shows the panel ...
        ui.tick()          # ... so the timer asks the session's thread to follow the running job's log
        check(info.following, "followed once the panel showed the running job")
        equal(info.follow, core.FOLLOW_ASKED, "the timer does not wait for the followLog answer")
        info = wait_tracked(sess, job_id, lambda i: i.follow != core.FOLLOW_ASKED, timeout=30)
        equal(info.follow, core.FOLLOW_ON, "the answer came and the job still runs")
        check(any(line.startswith("printer line ") for line in info.log_lines), "the lines so far: %r" % info.log_lines)
        # While it runs, new lines arrive as the script prints them, and the panel draws them.
        seen = info.log_lines[-1]
        wait_tracked(sess, job_id, lambda i: i.state == "ACTIVE" and i.log_lines and i.log_lines[-1] != seen, timeout=30)
        labels = draw_panel()
        shown = [line for line in info.last_log_lines() if line]
        check(shown and all(line in labels for line in shown), "the panel draws the last lines %r: %r" % (shown, labels))
        check(len(info.last_log_lines()) <= core.LOG_LINES, "at most %d lines" % core.LOG_LINES)
        info = wait_tracked(sess, job_id, lambda i: i.final)
        equal(info.state, "COMPLETED", "state (%s)" % info.error_text())
        equal(info.following, False, "following ends when the job rests")
        equal(info.last_log_lines()[-2:], ["printer line 12", "printer done"], "the last lines, in order")
        expected = ["printer line %d" % i for i in range(8, 13)] + ["printer done"]
        equal(info.last_log_lines(), expected, "the last %d lines" % core.LOG_LINES)

        # A panel that is no longer drawn stops following.
        job_id = core.send_selected(sess.client, script, [bpy.data.objects["Sender"]], name="printer 2")
        info = sess.tracker.add(job_id, "printer 2", auto_load=False)
        wait_tracked(sess, job_id, lambda i: i.state == "ACTIVE", timeout=60)
        draw_panel()
        ui.tick()
        check(info.following, "followed")
        info = wait_tracked(sess, job_id, lambda i: i.follow == core.FOLLOW_ON and i.log_lines, timeout=30)
        sess.panel_drawn = time.monotonic() - ui.PANEL_HIDDEN_SECONDS - 1
        ui.tick()
        check(not info.following, "no longer followed when the panel is hidden")
        frozen = list(info.log_lines)
        info = wait_tracked(sess, job_id, lambda i: i.follow is None, timeout=30)  # unfollowLog answered
        info = wait_tracked(sess, job_id, lambda i: i.final)
        equal(info.log_lines, frozen, "no lines applied after unfollowing")
    finally:
        import shutil
        shutil.rmtree(folder, ignore_errors=True)
        sess.panel_drawn = None


def test_panel_draws():
    sess = session()
    for with_progress in (False, True):
        log = []
        fake = type("FakePanel", (), {"layout": FakeLayout(log, with_progress)})()
        ui.BLENDER_JOBS_PT_panel.draw(fake, bpy.context)
        labels = [entry[1] for entry in log if entry[0] == "label"]
        check(("label", "Server %d" % sess.client.pid) in log, "server line: %r" % labels)
        counts = sess.tracker.counts()
        for key in ("Queued", "Running", "Completed", "Failed"):
            check("%s %d" % (key, counts[key.lower()]) in labels, "counter %s in %r" % (key, labels))
        bars = [entry for entry in log if entry[0] == "progress"] if with_progress else \
            [text for text in labels if text and set(text) <= set(u"\u2588\u2591")]
        equal(len(bars), min(len(sess.tracker.jobs), ui.JOBS_SHOWN), "one progress bar per job shown")
        operators = [entry[1] for entry in log if entry[0] == "operator"]
        check("blender_jobs.run_job" in operators, "run button")
        check("blender_jobs.remove_job" in operators, "remove buttons for finished jobs")
    # a job in progress gets a cancel button
    info = sess.tracker.add("job-000000000000", "fake running")
    info.state, info.progress = "ACTIVE", 0.42
    log = []
    ui.BLENDER_JOBS_PT_panel.draw(type("P", (), {"layout": FakeLayout(log, False)})(), bpy.context)
    check(("operator", "blender_jobs.cancel_job") in log, "cancel button for a running job")
    check(("label", "42%") in log and ("label", "Running") in log, "42%% and the state shown: %r" % log)
    # The default sidebar (about 230 px) holds about 30 characters per label: longer texts are wrapped.
    limit = ui.text_width(bpy.context) + 2
    long_labels = [e[1] for e in log if e[0] == "label" and len(e[1]) > limit]
    equal(long_labels, [], "labels longer than the default sidebar holds (%d characters)" % limit)
    sess.tracker.remove("job-000000000000")
    equal(ui.tick(), ui.TIMER_INTERVAL_IDLE, "tick with only finished jobs")


DESCRIBE_BLOCKS = """
import bpy
python_data = {
    "blocks": sorted("%s:%s" % (type(b).__name__, b.name) for b in passed_data_blocks),
    "objects": sorted(o.name for o in bpy.data.objects),
    "file": bpy.path.basename(bpy.data.filepath),
    "text": bpy.data.texts["Note"].as_string() if "Note" in bpy.data.texts else None,
}
"""


def write_script(name, text):
    path = os.path.join(tempfile.gettempdir(), "bj-addon-%d-%s" % (os.getpid(), name))
    with open(path, "w") as f:
        f.write(text)
    return path


def test_other_data_block_types_are_passed():
    """Materials, meshes and collections (the panel's Data Blocks list) travel with the selected
    objects; the script gets them all in passed_data_blocks."""
    sess = session()
    material = bpy.data.materials.new("PassedMaterial")
    mesh = bpy.data.meshes.new("PassedMesh")
    group = bpy.data.collections.new("PassedCollection")
    settings = bpy.context.scene.blender_jobs
    settings.blocks.clear()
    for kind, name in (("materials", material.name), ("meshes", mesh.name), ("collections", group.name)):
        item = settings.blocks.add()
        item.kind, item.name = kind, name
    select_only(bpy.data.objects["Sender"])
    blocks = ui.collect_blocks(bpy.context, settings)
    equal(sorted(blocks), ["collections", "materials", "meshes", "objects"], "kinds collected")
    submission = core.prepare_job(write_script("describe.py", DESCRIBE_BLOCKS), blocks, name="blocks")
    equal(submission.blocks, {"objects": ["Sender"], "materials": ["PassedMaterial"], "meshes": ["PassedMesh"],
                              "collections": ["PassedCollection"]}, "names sent")
    job_id = core.send_job(sess.client, submission)
    check(not os.path.exists(os.path.dirname(submission.params["passed_data_blocks"]["library"])),
          "the input folder is deleted once sent")
    equal(sess.client.wait_for_job(job_id, timeout=WAIT)["state"], "COMPLETED", "state")
    got = sess.client.get_python_data(job_id)["blocks"]
    for expected in ("Object:Sender", "Material:PassedMaterial", "Mesh:PassedMesh", "Collection:PassedCollection"):
        check(expected in got, "%s in %r" % (expected, got))
    item = settings.blocks.add()
    item.kind, item.name = "materials", "NoSuchMaterial"
    try:
        ui.collect_blocks(bpy.context, settings)
    except ValueError as exc:
        check("NoSuchMaterial" in str(exc), str(exc))
    else:
        raise AssertionError("a missing data block was accepted")
    settings.blocks.clear()


def test_run_in_a_copy_of_the_open_file():
    """In File Copy: the job runs in a copy of the open file as it is in memory (unsaved changes
    too), saved with save_as_mainfile(copy=True): the user's file and path stay as they were."""
    sess = session()
    folder = tempfile.mkdtemp(prefix="bj-addon-file-")
    path = os.path.join(folder, "user file.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    size = os.path.getsize(path)
    unsaved = make_mesh_object("UnsavedChange", CUBE_VERTS, CUBE_FACES)
    note = bpy.data.texts.new("Note")
    note.write("unsaved text")
    submission = core.prepare_job(write_script("describe.py", DESCRIBE_BLOCKS), None, use_blend_file=True,
                                  name="in file copy")
    check(submission.params["blend_file"] != path, "a copy, not the user's file")
    job_id = core.send_job(sess.client, submission)
    equal(sess.client.wait_for_job(job_id, timeout=WAIT)["state"], "COMPLETED", "state")
    data = sess.client.get_python_data(job_id)
    check("UnsavedChange" in data["objects"] and "Sender" in data["objects"], "objects in the copy: %r" % data)
    equal(data["text"], "unsaved text", "unsaved text block in the copy")
    equal(data["blocks"], [], "nothing passed besides the file")
    equal(bpy.data.filepath, path, "the open file's path is unchanged")
    check("UnsavedChange" in bpy.data.objects, "the open file still has its unsaved changes")
    equal(os.path.getsize(path), size, "the user's file on disk is untouched")
    with bpy.data.libraries.load(path) as (data_from, data_to):
        check("UnsavedChange" not in data_from.objects, "the unsaved object did not reach the user's file")
    bpy.data.objects.remove(unsaved)
    bpy.data.texts.remove(note)
    import shutil
    shutil.rmtree(folder, ignore_errors=True)


FLAKY_SCRIPT = """import os
if not os.path.exists(marker):
    open(marker, "w").close()
    print("first attempt fails")
    raise RuntimeError("flaky: first attempt")
python_data = {"attempt": "second"}
"""


def test_retries_and_details_with_the_whole_traceback():
    sess = session()
    marker = os.path.join(tempfile.mkdtemp(prefix="bj-addon-flaky-"), "marker")
    settings = bpy.context.scene.blender_jobs
    settings.script = write_script("flaky.py", FLAKY_SCRIPT)
    settings.passed_data = json.dumps({"marker": marker})
    settings.max_attempts = 2
    settings.send_selected = False
    settings.timeout = 0
    try:
        equal(bpy.ops.blender_jobs.run_job(), {'FINISHED'}, "run_job with 2 attempts")
        info = list(sess.tracker.jobs.values())[-1]
        info = wait_tracked(sess, info, lambda i: i.final)
    finally:
        settings.max_attempts, settings.send_selected, settings.passed_data = 1, True, ""
    equal((info.state, info.attempt), ("COMPLETED", 2), "completed on the second attempt")
    # A failed job: Details writes the error with its whole traceback and the log into a text block.
    failed = run_tracked(sess, "raises.py", "raises again", auto_load=False)
    equal(failed.state, "FAILED", "state")
    equal(bpy.ops.blender_jobs.show_details(job_id=failed.job_id), {'FINISHED'}, "show_details")
    text = bpy.data.texts["blender-jobs %s" % failed.job_id].as_string()
    for expected in ("Error: SCRIPT_ERROR", "Traceback (most recent call last)", "in inner",
                     "ValueError: fixture failure: expected", "--- log"):
        check(expected in text, "%r in the details:\n%s" % (expected, text))
    equal(bpy.ops.blender_jobs.show_details(job_id=info.job_id), {'FINISHED'}, "details of the retried job")
    text = bpy.data.texts["blender-jobs %s" % info.job_id].as_string()
    check("Attempt 1 failed: SCRIPT_ERROR" in text and "first attempt fails" in text, text)


def test_server_starts_without_blocking():
    """start_session returns at once (the server starts on the session's thread, the panel says
    "starting"); a job submitted meanwhile is sent once the server is ready."""
    core.shutdown_session()
    started = time.monotonic()
    sess = core.start_session(workers=1)
    returned = time.monotonic() - started
    equal(sess.status, core.STARTING, "status right after start_session (returned after %.3f s)" % returned)
    log = []
    ui.BLENDER_JOBS_PT_panel.draw(type("P", (), {"layout": FakeLayout(log, False)})(), bpy.context)
    check(any(e[0] == "label" and e[1].startswith("Server starting") for e in log), "panel: %r" % log)
    select_only(bpy.data.objects["Sender"])
    info = sess.submit(core.prepare_job(os.path.join(JOBS, "bmesh_quad.py"), {"objects": [bpy.data.objects["Sender"]]},
                                        name="while starting"), auto_load=False)
    equal(info.state, "SUBMITTING", "pending while the server starts")
    info = wait_tracked(sess, info, lambda i: i.final)
    equal((info.state, sess.status), ("COMPLETED", core.READY), "sent and run once ready")
    print("  start_session returned after %.1f ms; the server was ready after %.2f s" % (
        returned * 1000, time.monotonic() - started))


def test_jobs_are_kept_across_restarts():
    """Without a Job Folder the server keeps the add-on's jobs in the workspace of the open file's
    folder (or of the Blender user): a new server (as after restarting Blender) lists them, with
    their results."""
    sess = session()
    workspace = sess.options["workspace"]
    equal(workspace, core.default_workspace(), "the session's workspace")
    check(not sess.info["stateDirTemporary"], "a persistent state directory: %r" % sess.info.get("stateDirNote"))
    info = run_tracked(sess, "bmesh_quad.py", "kept", auto_load=False)
    equal(info.state, "COMPLETED", "state")
    core.shutdown_session()
    again = session()
    check(again is not sess, "a new server")
    kept = again.tracker.jobs.get(info.job_id)
    check(kept is not None and kept.state == "COMPLETED", "the new server's session lists the job: %r" % kept)
    equal(kept.auto_load, False, "adopted jobs are not loaded again by themselves")
    loaded = core.load_data_blocks(again.client, info.job_id)
    check(loaded and loaded[0].name.startswith("Sender_quad"), "its results load: %r" % loaded)


def test_unregister_shuts_server_down():
    sess = core.current_session()
    check(sess is not None, "a server is running")
    server_pid = sess.client.pid
    worker_pids = [w["pid"] for w in sess.client.get_stats()["workerDetails"] if w.get("pid", -1) > 0]
    check(worker_pids, "workers are running")
    equal(server_processes_of_this_blender(), [server_pid], "server process while registered")
    blender_jobs_addon.unregister()
    check(core.current_session() is None, "no session after unregister")
    check(not hasattr(bpy.types, "BLENDER_JOBS_OT_run_job"), "operator unregistered")
    check(not hasattr(bpy.types.Scene, "blender_jobs"), "scene settings removed")
    check(not bpy.app.timers.is_registered(ui.tick), "timer removed")
    deadline = time.monotonic() + 15
    left = [server_pid] + worker_pids
    while time.monotonic() < deadline:
        left = [pid for pid in [server_pid] + worker_pids if proc_alive(pid)]
        if not left:
            break
        time.sleep(0.1)
    equal(left, [], "server and worker processes alive after unregister")
    equal(server_processes_of_this_blender(), [], "server processes of this Blender")
    equal(sess.client.process.returncode, 0, "server exit code (shutdown + exit)")


def test_enable_through_addon_utils_uses_preferences():
    import addon_utils
    mod = addon_utils.enable("blender_jobs_addon", default_set=True, handle_error=None)
    check(mod is not None, "addon_utils.enable returned the module")
    try:
        prefs = ui.get_prefs()
        check(prefs is not None, "preferences available once enabled")
        equal(prefs.server, "", "the Server preference defaults to empty (the lookup)")
        prefs.server = JAR
        prefs.workers = 1
        sess = ui.session_from_prefs(wait=True)
        equal(sess.client.server_info["workers"], 1, "workers from the preferences")
        equal(sess.client.jar, JAR, "jar from the preferences")
        equal(sess.client.server_info["blender"]["path"], bpy.app.binary_path, "workers use this Blender")
        pid = sess.client.pid
    finally:
        addon_utils.disable("blender_jobs_addon", default_set=True)
    check(core.current_session() is None, "disable shut the server down")
    deadline = time.monotonic() + 10
    while proc_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    check(not proc_alive(pid), "server %d still alive after disable" % pid)


ADDON_ZIP = os.path.join(ADDON_ROOT, "target", "blender_jobs_addon.zip")

INSTALLED_CHILD = r"""
import json, os, sys, time
import addon_utils, bpy
out = {}
try:
    bpy.ops.preferences.addon_install(filepath=os.environ["ADDON_ZIP"], overwrite=True)
    out["installed"] = sorted(os.listdir(bpy.utils.user_resource('SCRIPTS', path="addons")))
    mod = addon_utils.enable("blender_jobs_addon", default_set=True)
    out["module_file"] = mod.__file__
    ui = sys.modules["blender_jobs_addon.ui"]
    core = sys.modules["blender_jobs_addon.core"]
    prefs = bpy.context.preferences.addons["blender_jobs_addon"].preferences
    prefs.server = os.environ.get("SERVER_PREF", "")
    prefs.workers = 1
    me = bpy.data.meshes.new("ZipMesh")
    me.from_pydata([(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)], [], [(0, 1, 2, 3)])
    ob = bpy.data.objects.new("Zipped", me)
    bpy.context.scene.collection.objects.link(ob)
    for other in bpy.context.view_layer.objects:
        other.select_set(other is ob)
    bpy.context.scene.blender_jobs.script = os.environ["SCRIPT"]
    try:
        out["run"] = sorted(bpy.ops.blender_jobs.run_job())
    except RuntimeError as exc:  # an operator's ERROR report, in background mode
        out["run"], out["report"] = ["CANCELLED"], str(exc)
    session = core.current_session()
    out["status"], out["error"] = session.status, session.error
    if session.status != core.FAILED:
        session.wait_ready(120)
        out["client_module"] = session.client.__class__.__module__
        out["client_file"] = sys.modules[session.client.__class__.__module__].__file__
        deadline = time.monotonic() + 120
        info = list(session.tracker.jobs.values())[-1]
        while not info.final and time.monotonic() < deadline:
            ui.process_events(session)
            time.sleep(0.05)
        out["state"], out["loaded"] = info.state, info.loaded
        out["faces"] = len(bpy.data.objects["Zipped_quad"].data.polygons)
finally:
    addon_utils.disable("blender_jobs_addon", default_set=True)
    out["session_after_disable"] = repr(sys.modules["blender_jobs_addon.core"].current_session())
    print("RESULT " + json.dumps(out))
"""


def run_installed_child(tmp, extra_env):
    """A fresh Blender (own user scripts and config folders, no blender-jobs environment, outside
    any checkout) installs blender_jobs_addon.zip, enables it and presses Run; returns its report."""
    import json
    import subprocess
    env = dict(os.environ, BLENDER_USER_SCRIPTS=os.path.join(tmp, "scripts"),
               BLENDER_USER_CONFIG=os.path.join(tmp, "config"), XDG_DATA_HOME=os.path.join(tmp, "data"),
               ADDON_ZIP=ADDON_ZIP, SCRIPT=os.path.join(JOBS, "bmesh_quad.py"), PYTHONPATH="", PATH="/usr/bin:/bin")
    for key in ("BLENDER_JOBS_JAR", "BLENDER_JOBS_SERVER", "BLENDER_JOBS_CLIENT_DIR"):
        env.pop(key, None)
    env.update(extra_env)
    proc = subprocess.run([bpy.app.binary_path, "-b", "--factory-startup", "--python-exit-code", "1",
                           "--python-expr", INSTALLED_CHILD], env=env, cwd=tmp,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    text = proc.stdout.decode("utf-8", "replace")
    lines = [l for l in text.splitlines() if l.startswith("RESULT ")]
    check(proc.returncode == 0 and lines, "child Blender failed (exit %s):\n%s" % (proc.returncode, text[-3000:]))
    return json.loads(lines[-1][len("RESULT "):]), text


def test_installed_from_zip_runs_a_job():
    """The zip `mvn package` builds, installed like a user would into a fresh Blender: the client
    module ships inside it, the Server preference points at the server, and Run runs a job."""
    import shutil
    check(os.path.isfile(ADDON_ZIP), "%s is missing: build it with `mvn -q package -DskipTests` in %s" % (ADDON_ZIP, REPO))
    tmp = tempfile.mkdtemp(prefix="bj-addon-install-test-")
    try:
        out, text = run_installed_child(tmp, {"SERVER_PREF": JAR})
        equal(out.get("installed"), ["blender_jobs_addon"], "installed into the user scripts folder")
        check(out["module_file"].startswith(tmp), "the installed copy was enabled: %s" % out["module_file"])
        equal(out.get("run"), ["FINISHED"], "run_job in the installed add-on (%s)" % text[-2000:])
        equal(out.get("client_module"), "blender_jobs_addon.blender_jobs_client", "the client shipped in the zip")
        check(out["client_file"].startswith(tmp), "client loaded from the installed add-on: %s" % out["client_file"])
        equal((out["state"], out["loaded"], out["faces"]), ("COMPLETED", ["Zipped_quad"], 2), "job result")
        equal(out["session_after_disable"], "None", "disable shut the server down")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_installed_without_a_server_says_where_it_looked():
    """No server anywhere: the first Run reports that no server was found and the lookup order."""
    import shutil
    tmp = tempfile.mkdtemp(prefix="bj-addon-noserver-test-")
    try:
        out, text = run_installed_child(tmp, {})
        equal(out.get("run"), ["CANCELLED"], "Run without a server")
        equal(out.get("status"), "failed", "session status")
        error = out.get("error") or ""
        for expected in ("No blender-jobs server found", "1. the add-on's Server preference: not given",
                         "2. $BLENDER_JOBS_SERVER: not set", "3. blender-jobs-server on PATH: not found",
                         "4. the build output of a blender-jobs checkout"):
            check(expected in error, "%r not in the error: %s" % (expected, error))
        check("No blender-jobs server: No blender-jobs server found" in out.get("report", ""), "Run's report: %r" % out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


RESUMABLE_SCRIPT = """import os, time
# The first run creates the marker and sleeps; a resumed run finds it and returns the sent object.
if os.path.exists(marker):
    ob = passed_data_blocks[0]
    ob.name = ob.name + "_resumed"
    data_blocks = [ob]
    python_data = {"resumed": True}
else:
    open(marker, "w").close()
    update_job_progress(0.1, "first run: sleeping")
    time.sleep(60)
"""


def test_interrupted_job_is_tracked_and_resumed():
    """With a job folder (state_dir), a job running when the server stops becomes INTERRUPTED;
    the next server's session lists it, the panel offers Resume, and the resumed job completes
    and its result is loaded."""
    import shutil
    blender_jobs_addon.register()
    tmp = tempfile.mkdtemp(prefix="bj-addon-resume-test-")
    try:
        state_dir = os.path.join(tmp, "jobs")
        script = os.path.join(tmp, "resumable.py")
        with open(script, "w") as f:
            f.write(RESUMABLE_SCRIPT)
        marker = os.path.join(tmp, "marker")
        ob = make_mesh_object("Resumable", [(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)], [(0, 1, 2, 3)])
        select_only(ob)
        sess = core.get_session(workers=1, state_dir=state_dir)
        equal(os.path.realpath(sess.client.state_dir), os.path.realpath(state_dir), "the server uses the job folder")
        job_id = core.send_selected(sess.client, script, [ob], passed_data={"marker": marker}, name="resumable")
        sess.tracker.add(job_id, "resumable", scene_name=bpy.context.scene.name)
        wait_tracked(sess, job_id, lambda i: i.state == "ACTIVE" and i.progress > 0, timeout=60)

        # Stop Server: the running job becomes INTERRUPTED (not CANCELED), and waits do not hang.
        equal(bpy.ops.blender_jobs.stop_server(), {'FINISHED'}, "stop_server operator")
        check(core.current_session() is None, "no session after stop")
        equal(sess.client.wait_for_job(job_id, timeout=5)["state"], "INTERRUPTED", "wait_for_job after the stop")
        ui.process_events(sess)
        info = sess.tracker.jobs[job_id]
        equal((info.state, info.error.get("kind")), ("INTERRUPTED", "INTERRUPTED"), "tracked state and error")
        check(info.resting and not info.final, "INTERRUPTED rests but is not final")
        counts = sess.tracker.counts()
        equal((counts["interrupted"], counts["running"], counts["canceled"]), (1, 0, 0), "counters after the stop")

        # The next server on the job folder lists the job as interrupted; the panel offers Resume.
        sess2 = core.get_session(workers=1, state_dir=state_dir)
        equal(sess2.client.recovered_jobs, {"jobs": 1, "interrupted": 1, "resumed": 0, "pruned": 0, "unreadable": 0}, "recoveredJobs")
        info = sess2.tracker.jobs.get(job_id)
        check(info is not None and info.state == "INTERRUPTED", "the new session tracks the interrupted job: %r" % info)
        equal(sess2.tracker.counts()["interrupted"], 1, "interrupted counter")
        raises("JobInterrupted", lambda: core.load_data_blocks(sess2.client, job_id), "loading an interrupted job")
        log = []
        ui.BLENDER_JOBS_PT_panel.draw(type("P", (), {"layout": FakeLayout(log, True)})(), bpy.context)
        check(("label", "Interrupted 1") in log, "interrupted counter in the panel: %r" % log)
        check(("operator", "blender_jobs.resume_job") in log, "a Resume button")
        equal(ui.tick(), ui.TIMER_INTERVAL_IDLE, "an interrupted job needs no busy ticks")

        equal(bpy.ops.blender_jobs.resume_job(job_id=job_id), {'FINISHED'}, "resume_job operator")
        info = wait_tracked(sess2, job_id, lambda i: i.final)
        equal(info.state, "COMPLETED", "state after resuming (%s)" % info.error_text())
        equal(info.error, None, "no error left after the resumed run")
        equal(sess2.client.get_python_data(job_id), {"resumed": True}, "python_data of the resumed run")
        equal(info.loaded, ["Resumable_resumed"], "the timer step loaded the resumed job's result")
        check("Resumable_resumed" in bpy.context.scene.collection.objects, "loaded into the scene")
        equal(sess2.tracker.counts()["interrupted"], 0, "no interrupted job left")
        raises("JobNotResumable", lambda: core.resume_job(sess2.client, job_id), "resuming a completed job")
    finally:
        core.shutdown_session()
        blender_jobs_addon.unregister()
        shutil.rmtree(tmp, ignore_errors=True)


TESTS = [
    test_register_in_background,
    test_bad_inputs_are_rejected_before_the_server,
    test_send_selected_poll_load_bmesh_quad,
    test_load_without_replace_keeps_both,
    test_load_with_replace_swaps_existing_object,
    test_operator_and_timer_step_load_results,
    test_progress_and_cancel,
    test_failed_job_is_tracked,
    test_unsaved_job_states_are_shown_until_saved_again,
    test_tracker_orders_log_events_around_the_follow_answer,
    test_panel_shows_the_last_log_lines_of_a_running_job,
    test_panel_draws,
    test_other_data_block_types_are_passed,
    test_retries_and_details_with_the_whole_traceback,
    test_server_starts_without_blocking,
    test_jobs_are_kept_across_restarts,
    test_run_in_a_copy_of_the_open_file,
    test_unregister_shuts_server_down,
    test_enable_through_addon_utils_uses_preferences,
    test_installed_from_zip_runs_a_job,
    test_installed_without_a_server_says_where_it_looked,
    test_interrupted_job_is_tracked_and_resumed,
]


def main():
    passed, failed = 0, []
    for test in TESTS:
        start = time.monotonic()
        try:
            test()
        except Exception:
            failed.append(test.__name__)
            print("FAIL %s (%.1f s)" % (test.__name__, time.monotonic() - start))
            traceback.print_exc()
            sess = core.current_session()
            if sess is not None:
                print("  server log tail:\n    " + "\n    ".join(sess.client.stderr_tail(15)))
        else:
            passed += 1
            print("ok   %s (%.1f s)" % (test.__name__, time.monotonic() - start))
        sys.stdout.flush()
    try:
        core.shutdown_session()
    except Exception:
        traceback.print_exc()
    if failed:
        print("failed: " + ", ".join(failed))
    print("%d passed, %d failed" % (passed, len(failed)))
    sys.stdout.flush()
    if failed:
        sys.exit(1)


main()
