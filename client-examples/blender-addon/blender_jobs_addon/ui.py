"""Preferences, scene settings, operators, the sidebar panel and the timer.

Everything here is thin glue around :mod:`.core`. The timer :func:`tick` drains the events the
client's callbacks and the session's thread queued, updates the job list, loads finished results
and redraws the sidebar: only the sidebar (UI) region of each 3D View, never the whole area, so
the viewport is not redrawn ten times a second while jobs run.
"""

import os
import textwrap
import time
import traceback

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from . import core

TIMER_INTERVAL_BUSY = 0.1   # seconds between ticks while jobs run or the server starts
TIMER_INTERVAL_IDLE = 0.5
JOBS_SHOWN = 8              # job boxes in the panel unless "all" is on
LOG_BYTES = 1 << 20         # the Details text holds at most the last MiB of a job's log
#: The panel counts as shown this long after it was last drawn: the running jobs it shows are followed.
PANEL_SHOWN_SECONDS = 2.0
#: Not drawn for this long: their logs are no longer followed (nobody looks).
PANEL_HIDDEN_SECONDS = 10.0


def addon_name():
    return __package__


def get_prefs(context=None):
    """The add-on preferences, or None when the add-on was registered without being enabled
    through Preferences (e.g. a test calling register() directly)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(addon_name())
    return addon.preferences if addon is not None else None


def _session_kwargs(context=None):
    prefs = get_prefs(context)
    if prefs is None:
        return {}
    return {"server": prefs.server or None, "workers": prefs.workers or None,
            "blender": prefs.blender_path or None, "java": prefs.java_path or None,
            "state_dir": prefs.state_dir or None}


def session_from_prefs(context=None, wait=False, timeout=120.0):
    """The session with the preferences' server, workers, blender, java and job folder: started on
    a background thread if needed (returns at once, STARTING), or, with ``wait``, once ready
    (raises why it could not start)."""
    if wait:
        return core.get_session(timeout=timeout, **_session_kwargs(context))
    return core.start_session(**_session_kwargs(context))


# --------------------------------------------------------------------------- settings

class BLENDER_JOBS_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    server: StringProperty(
        name="Server", subtype='FILE_PATH',
        description="The blender-jobs server: its launcher bin/blender-jobs-server (or a command line, or "
                    "blender-jobs-server.jar). Empty: $BLENDER_JOBS_SERVER, then blender-jobs-server on PATH, "
                    "then the build output of a blender-jobs checkout")
    workers: IntProperty(
        name="Workers", min=0, max=64, default=2,
        description="Warm Blender workers the server keeps (0: one per CPU core)")
    blender_path: StringProperty(
        name="Worker Blender", subtype='FILE_PATH',
        description="Blender executable for the workers; empty: this Blender")
    java_path: StringProperty(
        name="Java", subtype='FILE_PATH',
        description="java executable; empty: $BLENDER_JOBS_JAVA, $JAVA_HOME/bin/java, then java on PATH")
    state_dir: StringProperty(
        name="Job Folder", subtype='DIR_PATH',
        description="Keep jobs and results in this folder (--state-dir). Empty: a per-user folder of the "
                    "open .blend's folder (or of this Blender user, for an unsaved file), kept across restarts")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "server")
        layout.prop(self, "workers")
        layout.prop(self, "blender_path")
        layout.prop(self, "java_path")
        layout.prop(self, "state_dir")
        col = layout.column(align=True)
        col.label(text="Without a Server, the add-on looks for $BLENDER_JOBS_SERVER, then blender-jobs-server")
        col.label(text="on PATH, then a checkout's server/target. The server starts with the first job.")


#: EnumProperty items of the data-block types (a module-level list: Blender keeps pointers to its strings).
BLOCK_KIND_ITEMS = [(kind, label, "Pass %s data blocks" % label.lower(), icon, number)
                    for number, (kind, label, icon) in enumerate(core.BLOCK_KINDS)]


class BLENDER_JOBS_PG_block(bpy.types.PropertyGroup):
    """One data block passed to the script (besides the selected objects)."""
    kind: EnumProperty(name="Type", items=BLOCK_KIND_ITEMS)
    name: StringProperty(name="Name", description="The data block to pass (appended into the job's Blender)")


class BLENDER_JOBS_PG_settings(bpy.types.PropertyGroup):
    script: StringProperty(name="Script", subtype='FILE_PATH',
                           description="The Python script the background Blender runs")
    passed_data: StringProperty(name="Data",
                                description='Optional JSON object; each key becomes a global of the '
                                            'script, e.g. {"duration": 0.5}')
    timeout: FloatProperty(name="Timeout", min=0.0, max=31536000.0, default=0.0, unit='TIME_ABSOLUTE',
                           description="Seconds per attempt; 0 = no limit")
    max_attempts: IntProperty(name="Attempts", min=1, max=20, default=1,
                              description="How many times a failing job runs before it is given up")
    send_selected: BoolProperty(name="Selected Objects", default=True,
                                description="Pass the selected objects to the script (passed_data_blocks)")
    use_blend_file: BoolProperty(name="In File Copy", default=False,
                                 description="Run the script in a copy of the open file as it is now "
                                             "(saved to a temporary copy; your file is not touched)")
    blocks: CollectionProperty(type=BLENDER_JOBS_PG_block)
    auto_load: BoolProperty(name="Load Results", default=True,
                            description="Append the returned data blocks when a job completes")
    replace_existing: BoolProperty(name="Replace Same Names", default=False,
                                   description="Returned blocks replace local blocks of the same name "
                                               "(users are remapped, the old block is deleted)")
    show_all_jobs: BoolProperty(name="All Jobs", default=False, description="List every job, not only the latest")


# --------------------------------------------------------------------------- operators

def collect_blocks(context, settings):
    """{bpy.data collection: [ID, ...]} to pass: the selected objects (if on) and the panel's list."""
    blocks = {}
    if settings.send_selected:
        blocks["objects"] = list(getattr(context, "selected_objects", None) or [])
    missing = []
    for item in settings.blocks:
        block = getattr(bpy.data, item.kind).get(item.name) if item.name else None
        if block is None:
            missing.append("%s %r" % (item.kind, item.name))
            continue
        ids = blocks.setdefault(item.kind, [])
        if block not in ids:
            ids.append(block)
    if missing:
        raise ValueError("no such data block: %s" % ", ".join(missing))
    return blocks


class BLENDER_JOBS_OT_run_job(bpy.types.Operator):
    """Run the script in a background Blender with the selected objects and the listed data blocks"""
    bl_idname = "blender_jobs.run_job"
    bl_label = "Run Background Job"
    # Not REGISTER: "Adjust Last Operation" would run the job again, and its panel over the 3D
    # View makes the viewport redraw (costly under software OpenGL).
    bl_options = set()

    script: StringProperty(name="Script", subtype='FILE_PATH',
                           description="Overrides the panel's script when set")

    def execute(self, context):
        settings = context.scene.blender_jobs
        script = self.script or settings.script
        if not script:
            self.report({'ERROR'}, "Choose a script file first")
            return {'CANCELLED'}
        try:
            passed_data = core.parse_passed_data(settings.passed_data)
        except ValueError as exc:
            self.report({'ERROR'}, "Data is not a JSON object: %s" % exc)
            return {'CANCELLED'}
        try:
            blocks = collect_blocks(context, settings)
        except ValueError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        objects = blocks.get("objects") or []
        name = os.path.basename(bpy.path.abspath(script))
        if objects:
            name += ": " + ", ".join(ob.name for ob in objects[:3]) + ("..." if len(objects) > 3 else "")
        session = session_from_prefs(context)  # returns at once; the server starts in the background
        if session.status == core.FAILED:
            self.report({'ERROR'}, "No blender-jobs server: %s" % session.error.splitlines()[0])
            print("blender-jobs: %s" % session.error)
            return {'CANCELLED'}
        try:
            submission = core.prepare_job(script, blocks, settings.use_blend_file, passed_data, settings.timeout,
                                          name, settings.max_attempts if settings.max_attempts > 1 else None)
        except Exception as exc:
            traceback.print_exc()
            self.report({'ERROR'}, "Could not prepare the job: %s" % exc)
            return {'CANCELLED'}
        info = session.submit(submission, script=script, objects=[ob.name for ob in objects],
                              scene_name=context.scene.name, replace=settings.replace_existing,
                              auto_load=settings.auto_load)
        ensure_timer()
        tag_redraw()
        # No INFO report: the job's box shows it at once, and a report's banner animates the
        # status bar (a window redraw 20 times a second, costly under software OpenGL).
        return {'FINISHED'}


class BLENDER_JOBS_OT_start_server(bpy.types.Operator):
    """Start the blender-jobs server now (in the background), and list the jobs it kept"""
    bl_idname = "blender_jobs.start_server"
    bl_label = "Start Server"
    bl_options = {'INTERNAL'}

    def execute(self, context):
        session = session_from_prefs(context)
        ensure_timer()
        tag_redraw()
        if session.status == core.FAILED:
            self.report({'ERROR'}, "No blender-jobs server: %s" % session.error.splitlines()[0])
            return {'CANCELLED'}
        return {'FINISHED'}


class BLENDER_JOBS_OT_add_block(bpy.types.Operator):
    """Pass another data block (material, mesh, collection...) to the script"""
    bl_idname = "blender_jobs.add_block"
    bl_label = "Add Data Block"
    bl_options = {'INTERNAL', 'UNDO'}

    kind: EnumProperty(name="Type", items=BLOCK_KIND_ITEMS)

    def execute(self, context):
        item = context.scene.blender_jobs.blocks.add()
        item.kind = self.kind
        return {'FINISHED'}


class BLENDER_JOBS_OT_remove_block(bpy.types.Operator):
    """Do not pass this data block"""
    bl_idname = "blender_jobs.remove_block"
    bl_label = "Remove Data Block"
    bl_options = {'INTERNAL', 'UNDO'}

    index: IntProperty()

    def execute(self, context):
        blocks = context.scene.blender_jobs.blocks
        if 0 <= self.index < len(blocks):
            blocks.remove(self.index)
        return {'FINISHED'}


def _job_from_session(job_id):
    session = core.current_session()
    if session is None:
        return None, None
    return session, session.tracker.jobs.get(job_id)


class BLENDER_JOBS_OT_cancel_job(bpy.types.Operator):
    """Cancel this job (a running job's Blender is stopped)"""
    bl_idname = "blender_jobs.cancel_job"
    bl_label = "Cancel Job"
    bl_options = {'INTERNAL'}

    job_id: StringProperty()

    def execute(self, context):
        session, info = _job_from_session(self.job_id)
        if session is None or not session.alive():
            return {'CANCELLED'}
        try:
            core.cancel_job(session.client, self.job_id)
        except Exception as exc:
            self.report({'ERROR'}, "Could not cancel %s: %s" % (self.job_id, exc))
            return {'CANCELLED'}
        return {'FINISHED'}


class BLENDER_JOBS_OT_resume_job(bpy.types.Operator):
    """Run an interrupted job again (all interrupted jobs when no job is given)"""
    bl_idname = "blender_jobs.resume_job"
    bl_label = "Resume Job"
    bl_options = {'INTERNAL'}

    job_id: StringProperty()

    def execute(self, context):
        try:
            session = session_from_prefs(context, wait=True)
            job_ids = [self.job_id] if self.job_id else None
            if job_ids:
                core.resume_job(session.client, self.job_id)
            else:
                job_ids = core.resume_all(session.client)
        except Exception as exc:
            self.report({'ERROR'}, "Could not resume %s: %s" % (self.job_id or "the interrupted jobs", exc))
            return {'CANCELLED'}
        settings = context.scene.blender_jobs
        for job_id in job_ids:
            info = session.tracker.jobs.get(job_id) or session.tracker.add(job_id)
            if info.scene_name is None:  # a job an earlier server ran: load into this scene
                info.scene_name = context.scene.name
                info.replace, info.auto_load = settings.replace_existing, settings.auto_load
        ensure_timer()
        self.report({'INFO'}, "Resumed %d job(s)" % len(job_ids))
        return {'FINISHED'}


class BLENDER_JOBS_OT_load_results(bpy.types.Operator):
    """Append this job's returned data blocks into the open file"""
    bl_idname = "blender_jobs.load_results"
    bl_label = "Load Results"
    bl_options = {'UNDO', 'INTERNAL'}

    job_id: StringProperty()

    def execute(self, context):
        session, info = _job_from_session(self.job_id)
        if session is None or info is None or not session.alive():
            return {'CANCELLED'}
        if not load_job_results(session, info, replace=context.scene.blender_jobs.replace_existing):
            self.report({'ERROR'}, info.load_error or "loading failed")
            return {'CANCELLED'}
        self.report({'INFO'}, "Loaded %s" % ", ".join(info.loaded or []) or "nothing")
        return {'FINISHED'}


def job_details_text(session, info):
    """Everything about a job for people: state, error with the whole traceback (and crash
    report), earlier failed attempts, then the job's whole log (its last MiB)."""
    job = None
    if session is not None and session.alive() and not info.submitting:
        try:
            job = session.client.get_job(info.job_id)
        except Exception as exc:  # the server no longer has it: show what the panel knows
            job = None
            print("blender-jobs: getJob %s: %s" % (info.job_id, exc))
    lines = ["Job %s  %s" % (info.job_id, info.name), "State: %s (attempt %s)" % (
        (job or {}).get("state", info.state), (job or {}).get("attempt", info.attempt))]
    if job:
        lines.append("Script: %s" % job.get("script"))
    error = (job or {}).get("error") or info.error
    for earlier in (job or {}).get("earlierErrors") or []:
        lines += ["", "Attempt %s failed: %s: %s" % (earlier.get("attempt"), earlier.get("kind"), earlier.get("message"))]
        if earlier.get("traceback"):
            lines.append(earlier["traceback"].rstrip())
    if error:
        lines += ["", "Error: %s: %s" % (error.get("kind"), error.get("message"))]
        for key in ("traceback", "crashReport"):
            if error.get(key):
                lines += ["", error[key].rstrip()]
    if info.load_error:
        lines += ["", "Loading the results failed: %s" % info.load_error]
    log_file = (job or {}).get("logFile")
    lines += ["", "--- log %s ---" % (log_file or "")]
    text = None
    if log_file and os.path.exists(log_file):
        try:
            with open(log_file, "rb") as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - LOG_BYTES))
                text = f.read().decode("utf-8", "replace")
            if size > LOG_BYTES:
                text = "(the first %d bytes are left out)\n%s" % (size - LOG_BYTES, text)
        except OSError as exc:
            text = "(cannot read the log: %s)" % exc
    elif job is not None:
        text = "\n".join(job.get("logTail") or []) or "(the job printed nothing)"
    else:
        text = "\n".join((error or {}).get("logTail") or []) or "(no log: the server is not running)"
    lines.append(text.rstrip("\n"))
    return "\n".join(lines) + "\n"


class BLENDER_JOBS_OT_show_details(bpy.types.Operator):
    """Show this job's error with its whole traceback, and its log, in a Text (Text Editor)"""
    bl_idname = "blender_jobs.show_details"
    bl_label = "Job Details"
    bl_options = {'INTERNAL'}

    job_id: StringProperty()

    def execute(self, context):
        session, info = _job_from_session(self.job_id)
        if info is None:
            return {'CANCELLED'}
        text_name = "blender-jobs %s" % info.job_id
        text = bpy.data.texts.get(text_name) or bpy.data.texts.new(text_name)
        text.clear()
        text.write(job_details_text(session, info))
        text.current_line_index = 0
        shown = False
        for area in getattr(context.screen, "areas", ()):
            if area.type == 'TEXT_EDITOR':
                area.spaces.active.text = text
                shown = True
                break
        summary = info.error_text() or info.state.capitalize()

        def draw(menu, _context):
            col = menu.layout.column(align=True)
            for line in textwrap.wrap(summary, 90)[:4]:
                col.label(text=line)
            tb = (info.error or {}).get("traceback")
            for line in (tb or "").rstrip().splitlines()[-14:]:
                col.label(text=line.replace("\t", "    "))
            col.separator()
            col.label(text="Whole traceback and log: Text Editor > %s" % text_name, icon='TEXT')
        if context.window_manager is not None and not bpy.app.background:
            context.window_manager.popup_menu(draw, title=info.name, icon='ERROR' if info.error else 'INFO')
        self.report({'INFO'}, "%s in the text %r%s" % (summary[:80], text_name, "" if shown else " (Text Editor)"))
        return {'FINISHED'}


class BLENDER_JOBS_OT_remove_job(bpy.types.Operator):
    """Forget this finished or interrupted job (the server deletes its files)"""
    bl_idname = "blender_jobs.remove_job"
    bl_label = "Remove Job"
    bl_options = {'INTERNAL'}

    job_id: StringProperty()

    def execute(self, context):
        session, info = _job_from_session(self.job_id)
        if session is None:
            return {'CANCELLED'}
        remove_job(session, self.job_id)
        return {'FINISHED'}


class BLENDER_JOBS_OT_clear_finished(bpy.types.Operator):
    """Forget every finished job (the server deletes their files)"""
    bl_idname = "blender_jobs.clear_finished"
    bl_label = "Clear Finished"
    bl_options = {'INTERNAL'}

    def execute(self, context):
        session = core.current_session()
        if session is not None:
            for job_id in [j for j, info in session.tracker.jobs.items() if info.final]:
                remove_job(session, job_id)
        return {'FINISHED'}


class BLENDER_JOBS_OT_stop_server(bpy.types.Operator):
    """Shut the blender-jobs server down (unfinished jobs are interrupted; the next server can resume them); the next job starts it again"""
    bl_idname = "blender_jobs.stop_server"
    bl_label = "Stop Server"
    bl_options = set()

    def execute(self, context):
        core.shutdown_session()
        tag_redraw()
        return {'FINISHED'}


def remove_job(session, job_id):
    info = session.tracker.jobs.get(job_id)
    if info is not None and not info.resting:   # finished or interrupted jobs only
        return
    if session.alive() and not job_id.startswith("pending-"):
        try:
            session.client.remove_job(job_id)
        except Exception:
            pass  # already gone on the server; forget it here anyway
    session.tracker.remove(job_id)


def load_job_results(session, info, replace=None):
    """Loads a COMPLETED job's data blocks into its scene; records the outcome on ``info``."""
    scene = bpy.data.scenes.get(info.scene_name) if info.scene_name else None
    try:
        blocks = core.load_data_blocks(session.client, info.job_id,
                                       replace=info.replace if replace is None else replace, scene=scene)
    except Exception as exc:
        traceback.print_exc()
        info.load_error = str(exc)
        return False
    info.loaded = [block.name for block in blocks]
    info.load_error = None
    return True


# --------------------------------------------------------------------------- timer

def tag_redraw():
    """Redraws the sidebar of every 3D View: only its UI region, so the viewport itself (costly,
    e.g. under software OpenGL) is not redrawn for a progress change."""
    wm = getattr(bpy.context, "window_manager", None)
    if wm is None:
        return
    for window in wm.windows:
        screen = window.screen
        if screen is None:
            continue
        for area in screen.areas:
            if area.type == 'VIEW_3D':
                for region in area.regions:
                    if region.type == 'UI':
                        region.tag_redraw()


def process_events(session):
    """One timer step without the timer: drain events, update the job list, auto-load completed
    jobs. Returns the events handled. Tests call this directly."""
    events = core.poll(session.events)
    for method, params in events:
        if method == "window/showMessage" and isinstance(params, dict):
            session.server_message = params
            print("blender-jobs: %s" % params.get("message"))
        elif method == "addon/ready":
            session.adopt_startup_jobs()
        elif method == "addon/failed":
            print("blender-jobs: the server did not start: %s" % (params or {}).get("message"))
    completed = session.tracker.apply(events)
    for info in completed:
        if info.auto_load and info.loaded is None:
            load_job_results(session, info)
    if session.status == core.READY and not session.alive() and any(
            not info.resting and not info.submitting for info in session.tracker.jobs.values()):
        session.tracker.mark_lost("the blender-jobs server exited")
        events.append(core.Event("server/exited", {}))
    return events


def follow_shown_jobs(session, shown):
    """Follows the console of every running job the panel shows (``shown``: it was drawn just
    now), so that their boxes can draw their last lines; stops following when the panel has not
    been drawn for a while. Never waits: the session's thread sends followLog / unfollowLog.
    Returns the jobs it asked to follow."""
    started = []
    drawn = getattr(session, "jobs_drawn", ())
    for info in list(session.tracker.jobs.values()):
        if shown and info.state == "ACTIVE" and info.follow is None and info.job_id in drawn:
            session.follow_log(info)
            started.append(info)
        elif not shown and info.following:
            session.unfollow_log(info)
    return started


class RedrawPacer(object):
    """When to redraw the sidebar for what changed: at most every ``interval`` seconds, where the
    interval follows what a redraw costs. A tick that comes later than asked shows how long the
    main loop was busy (mostly the redraw just asked for); the interval then grows to four times
    that, so redraws take at most about a quarter of the main loop's time and other UI timers and
    input keep their pace (under software OpenGL a sidebar redraw can take 0.2 s). It shrinks back
    to ``MIN`` when redraws are cheap again. A change is never dropped: it is drawn late."""

    MIN, MAX = 0.1, 2.0
    #: A tick later than this counts as the main loop's being busy. An idle Blender fires timers
    #: within a few ms; a sidebar redraw under software OpenGL takes 30-60 ms (more with the log
    #: lines of running jobs), which a 50 ms threshold missed: redraws then took every other beat
    #: of a 50 ms UI timer.
    LATE = 0.02

    def __init__(self):
        self.interval = self.MIN
        self.last = 0.0
        self.pending = False
        self.expected = None  # when the next tick should come (monotonic)
        self.count = 0        # redraws asked for (the GUI test reads it)
        self.slowest_tick = 0.0  # seconds: the longest timer step (events, loading results)

    def tick(self, changed, now, next_delay):
        """Called by each timer tick; returns True when the sidebar should be redrawn now."""
        late = now - self.expected if self.expected is not None else 0.0
        self.expected = now + next_delay
        if late > self.LATE:
            self.interval = min(self.MAX, max(self.interval, 4.0 * late))
        else:
            self.interval = max(self.MIN, self.interval * 0.8)
        self.pending = self.pending or changed
        if self.pending and now - self.last >= self.interval:
            self.pending = False
            self.last = now
            self.count += 1
            return True
        return False


PACER = RedrawPacer()
_last_status = {}


def tick():
    """bpy.app.timers callback: never blocks; returns the delay until the next call."""
    session = core.current_session()
    if session is None:
        PACER.expected = None
        return TIMER_INTERVAL_IDLE
    started = time.monotonic()
    try:
        events = process_events(session)
    except Exception:
        traceback.print_exc()
        events = [None]
    drawn = getattr(session, "panel_drawn", None)
    if drawn is not None and session.alive():
        age = time.monotonic() - drawn
        if age < PANEL_SHOWN_SECONDS:
            follow_shown_jobs(session, True)   # their lines arrive as events (a redraw then)
        elif age > PANEL_HIDDEN_SECONDS:
            follow_shown_jobs(session, False)
    spent = time.monotonic() - started
    if spent > PACER.slowest_tick:
        PACER.slowest_tick = spent  # what the add-on's own work cost the main loop at most
    status = (id(session), session.status)
    changed = bool(events) or _last_status.get("status") != status
    _last_status["status"] = status
    busy = session.status == core.STARTING or session.tracker.busy()
    delay = TIMER_INTERVAL_BUSY if busy or PACER.pending else TIMER_INTERVAL_IDLE
    if PACER.tick(changed, time.monotonic(), delay):
        tag_redraw()
    return delay


def ensure_timer():
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TIMER_INTERVAL_BUSY, persistent=True)


# --------------------------------------------------------------------------- panel

STATE_ICONS = {"SUBMITTING": 'TIME', "QUEUED": 'SORTTIME', "ACTIVE": 'PLAY', "COMPLETED": 'CHECKMARK',
               "FAILED": 'ERROR', "CANCELED": 'CANCEL', "INTERRUPTED": 'PAUSE'}
STATE_TEXT = {"SUBMITTING": "Sending", "QUEUED": "Queued", "ACTIVE": "Running", "COMPLETED": "Completed",
              "FAILED": "Failed", "CANCELED": "Canceled", "INTERRUPTED": "Interrupted"}


def text_width(context):
    """Characters that fit on one label line of the region (the default sidebar: about 30)."""
    region = getattr(context, "region", None)
    width = getattr(region, "width", 0) or 240
    scale = (context.preferences.system.ui_scale if getattr(context, "preferences", None) else 0) or 1.0
    return max(16, int((width - 40 * scale) / (6.5 * scale)))


def wrapped(layout, text, width, icon='NONE', max_lines=4):
    """Labels for ``text`` wrapped at ``width`` characters (Blender cuts a long label instead)."""
    lines = []
    for paragraph in str(text).splitlines() or [""]:
        lines += textwrap.wrap(paragraph, width, subsequent_indent="  ") or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines - 1] + [lines[max_lines - 1][:max(0, width - 1)] + u"\u2026"]
    col = layout.column(align=True)
    for i, line in enumerate(lines):
        col.label(text=line, icon=icon if i == 0 else 'BLANK1' if icon != 'NONE' else 'NONE')
    return col


def draw_progress(layout, fraction, text):
    if hasattr(layout, "progress"):  # Blender 4.0+
        layout.progress(factor=fraction, type='BAR', text=text)
    else:                            # older Blender: a text bar and the percentage side by side
        filled = int(round(fraction * 10))
        split = layout.split(factor=0.72)
        split.label(text=u"\u2588" * filled + u"\u2591" * (10 - filled))
        split.label(text=text)


def draw_server(layout, context, session, width):
    box = layout.box()
    if session is None:
        row = box.row()
        row.label(text="Server: off", icon='RADIOBUT_OFF')
        row.operator(BLENDER_JOBS_OT_start_server.bl_idname, text="Start", icon='PLAY')
        return False
    if session.status == core.STARTING:
        box.label(text="Server starting" + "." * (1 + int(time.monotonic() - session.started_at) % 3), icon='TIME')
        return True
    if session.status == core.FAILED:
        row = box.row()
        row.label(text="No server", icon='ERROR')
        row.operator(BLENDER_JOBS_OT_start_server.bl_idname, text="Retry", icon='FILE_REFRESH')
        wrapped(box, session.error or "", width, max_lines=12)
        box.label(text="Set Server in the add-on's preferences.")
        return True
    alive = session.alive()
    row = box.row()
    row.label(text="Server %s%s" % (session.client.pid if session.client else "", "" if alive else " (exited)"),
              icon='RADIOBUT_ON' if alive else 'ERROR')
    row.operator(BLENDER_JOBS_OT_stop_server.bl_idname, text="", icon='QUIT')
    if (session.info or {}).get("stateDirTemporary"):
        wrapped(box, "Jobs are not kept: %s" % (session.info.get("stateDirNote") or "temporary folder"), width,
                icon='INFO', max_lines=3)
    message = session.server_message
    if message is not None and message.get("type", 3) <= 2:  # an error or warning not yet resolved
        wrapped(box, str(message.get("message", "")), width, icon='ERROR', max_lines=4)
    counts = session.tracker.counts()
    grid = box.grid_flow(columns=2, even_columns=True, align=True)
    for key in ("queued", "running", "completed", "failed"):
        grid.label(text="%s %d" % (key.capitalize(), counts[key]))
    if counts["canceled"]:
        box.label(text="Canceled %d" % counts["canceled"])
    if counts["interrupted"]:
        row = box.row()
        row.label(text="Interrupted %d" % counts["interrupted"])
        op = row.operator(BLENDER_JOBS_OT_resume_job.bl_idname, text="Resume", icon='FILE_REFRESH')
        op.job_id = ""
    return True


def draw_job(layout, info, width):
    """One job: name, progress, state and message, error, then its buttons (with words: the
    default sidebar has room for three)."""
    box = layout.box()
    wrapped(box, info.name, width, icon=STATE_ICONS.get(info.state, 'QUESTION'), max_lines=2)
    draw_progress(box, info.progress, "%d%%" % round(info.progress * 100))
    status = STATE_TEXT.get(info.state, info.state.capitalize())
    if info.attempt > 1:
        status += " (try %d)" % info.attempt
    if info.message and not info.resting:
        status += ": " + info.message
    elif info.loaded:
        status += ": loaded " + ", ".join(info.loaded)
    wrapped(box, status, width, max_lines=2)
    if info.error_text():
        wrapped(box, info.error_text(), width, icon='ERROR', max_lines=3)
    draw_log_lines(box, info, width)
    buttons = []
    if info.error or info.load_error or info.final:
        buttons.append((BLENDER_JOBS_OT_show_details, "Details", 'TEXT'))
    if info.state == "INTERRUPTED":
        buttons += [(BLENDER_JOBS_OT_resume_job, "Resume", 'FILE_REFRESH'), (BLENDER_JOBS_OT_cancel_job, "Cancel", 'X'),
                    (BLENDER_JOBS_OT_remove_job, "", 'TRASH')]
    elif info.submitting:
        pass
    elif not info.final:
        buttons.append((BLENDER_JOBS_OT_cancel_job, "Cancel", 'X'))
    else:
        if info.state == "COMPLETED":
            buttons.append((BLENDER_JOBS_OT_load_results, "Load", 'IMPORT'))
        buttons.append((BLENDER_JOBS_OT_remove_job, "Remove", 'TRASH'))
    if buttons:
        row = box.row(align=True)
        for op_class, text, icon in buttons:
            op = row.operator(op_class.bl_idname, text=text, icon=icon)
            op.job_id = info.job_id


def draw_log_lines(layout, info, width):
    """The last lines a running job printed (followed while the panel shows it); they stay on a
    failed job's box. One label per line, cut to the sidebar's width (Details has the whole log)."""
    lines = info.last_log_lines() if info.state in ("ACTIVE", "FAILED") else []
    if not lines:
        return
    col = layout.column(align=True)
    for line in lines:
        text = line.expandtabs(4)
        if len(text) > width:
            text = text[:max(0, width - 1)] + u"\u2026"
        col.label(text=text or " ")


class BLENDER_JOBS_PT_panel(bpy.types.Panel):
    bl_label = "Background Jobs"
    bl_idname = "BLENDER_JOBS_PT_panel"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "Jobs"

    #: time.monotonic() of the last draw (the screenshot test waits for it)
    last_draw = 0.0

    def draw(self, context):
        BLENDER_JOBS_PT_panel.last_draw = time.monotonic()
        layout = self.layout
        width = text_width(context)
        settings = context.scene.blender_jobs
        col = layout.column()
        col.prop(settings, "script", text="", icon='FILE_SCRIPT')
        col.prop(settings, "passed_data")
        col.prop(settings, "timeout")
        col.prop(settings, "max_attempts")
        col.prop(settings, "send_selected")
        col.prop(settings, "use_blend_file")
        blocks = col.column(align=True)
        for index, item in enumerate(settings.blocks):
            row = blocks.row(align=True)
            row.prop(item, "kind", text="", icon_only=True)
            row.prop_search(item, "name", bpy.data, item.kind, text="")
            op = row.operator(BLENDER_JOBS_OT_remove_block.bl_idname, text="", icon='X')
            op.index = index
        col.operator_menu_enum(BLENDER_JOBS_OT_add_block.bl_idname, "kind", text="Add Data Block", icon='ADD')
        col.prop(settings, "auto_load")
        col.prop(settings, "replace_existing")
        col.operator(BLENDER_JOBS_OT_run_job.bl_idname, icon='PLAY')

        session = core.current_session()
        if not draw_server(layout, context, session, width) or session is None or not session.tracker.jobs:
            return
        session.panel_drawn = time.monotonic()  # the timer follows the running jobs shown
        jobs = list(reversed(list(session.tracker.jobs.values())))
        row = layout.row()
        row.operator(BLENDER_JOBS_OT_clear_finished.bl_idname, icon='TRASH')
        if len(jobs) > JOBS_SHOWN:
            row.prop(settings, "show_all_jobs", text="All %d" % len(jobs), toggle=True)
        shown = jobs if settings.show_all_jobs else jobs[:JOBS_SHOWN]
        session.jobs_drawn = set(info.job_id for info in shown)
        for info in shown:
            draw_job(layout, info, width)


classes = (
    BLENDER_JOBS_AP_preferences,
    BLENDER_JOBS_PG_block,
    BLENDER_JOBS_PG_settings,
    BLENDER_JOBS_OT_run_job,
    BLENDER_JOBS_OT_start_server,
    BLENDER_JOBS_OT_add_block,
    BLENDER_JOBS_OT_remove_block,
    BLENDER_JOBS_OT_cancel_job,
    BLENDER_JOBS_OT_resume_job,
    BLENDER_JOBS_OT_load_results,
    BLENDER_JOBS_OT_show_details,
    BLENDER_JOBS_OT_remove_job,
    BLENDER_JOBS_OT_clear_finished,
    BLENDER_JOBS_OT_stop_server,
    BLENDER_JOBS_PT_panel,
)
