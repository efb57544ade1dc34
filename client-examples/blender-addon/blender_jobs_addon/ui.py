"""Preferences, scene settings, operators, the sidebar panel and the timer.

Everything here is thin glue around :mod:`.core`; the timer :func:`tick` drains the events the
client's callbacks queued, updates the job list, loads finished results and redraws the panel.
"""

import os
import time
import traceback

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import core

TIMER_INTERVAL_BUSY = 0.1   # seconds between ticks while jobs run
TIMER_INTERVAL_IDLE = 0.5
#: The panel counts as shown this long after it was last drawn: its running jobs' logs are followed.
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


def session_from_prefs(context=None):
    """core.get_session() with the preferences' jar, workers, blender, java, client folder and
    job folder."""
    prefs = get_prefs(context)
    if prefs is None:
        return core.get_session()
    return core.get_session(jar=prefs.jar_path or None, workers=prefs.workers or None,
                            blender=prefs.blender_path or None, java=prefs.java_path or None,
                            client_dir=prefs.client_dir or None, state_dir=prefs.state_dir or None)


# --------------------------------------------------------------------------- settings

class BLENDER_JOBS_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    jar_path: StringProperty(
        name="Server Jar", subtype='FILE_PATH',
        description="blender-jobs-server.jar; empty: $BLENDER_JOBS_JAR, else the repository's "
                    "server/target/blender-jobs-server.jar")
    client_dir: StringProperty(
        name="Client Folder", subtype='DIR_PATH',
        description="Folder holding blender_jobs_client.py (client-examples/python); empty: found "
                    "next to the add-on or next to the jar's repository")
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
        description="Where the server keeps jobs and results across restarts (--state-dir): jobs still "
                    "running when it stops are listed as interrupted next time and can be resumed. "
                    "Empty: a temporary folder, deleted when the server stops")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "jar_path")
        layout.prop(self, "client_dir")
        layout.prop(self, "workers")
        layout.prop(self, "blender_path")
        layout.prop(self, "java_path")
        layout.prop(self, "state_dir")
        layout.label(text="The server starts with the first job and stops when Blender exits.")


class BLENDER_JOBS_PG_settings(bpy.types.PropertyGroup):
    script: StringProperty(name="Script", subtype='FILE_PATH',
                           description="The Python script the background Blender runs")
    passed_data: StringProperty(name="Passed Data",
                                description='Optional JSON object; each key becomes a global of the '
                                            'script, e.g. {"duration": 0.5}')
    timeout: FloatProperty(name="Timeout", min=0.0, max=31536000.0, default=0.0, unit='TIME_ABSOLUTE',
                           description="Seconds per attempt; 0 = no limit")
    auto_load: BoolProperty(name="Load Results", default=True,
                            description="Append the returned data blocks when a job completes")
    replace_existing: BoolProperty(name="Replace Existing", default=False,
                                   description="Returned blocks replace local blocks of the same name "
                                               "(users are remapped, the old block is deleted)")


# --------------------------------------------------------------------------- operators

class BLENDER_JOBS_OT_run_job(bpy.types.Operator):
    """Send the selected objects and a script to a background Blender"""
    bl_idname = "blender_jobs.run_job"
    bl_label = "Run Background Job"
    bl_options = {'REGISTER'}

    script: StringProperty(name="Script", subtype='FILE_PATH',
                           description="Overrides the panel's script when set")

    @classmethod
    def poll(cls, context):
        return bool(getattr(context, "selected_objects", None))

    def execute(self, context):
        settings = context.scene.blender_jobs
        script = self.script or settings.script
        if not script:
            self.report({'ERROR'}, "Choose a script file first")
            return {'CANCELLED'}
        try:
            passed_data = core.parse_passed_data(settings.passed_data)
        except ValueError as exc:
            self.report({'ERROR'}, "Passed Data is not a JSON object: %s" % exc)
            return {'CANCELLED'}
        objects = list(context.selected_objects)
        try:
            session = session_from_prefs(context)
            name = "%s: %s" % (os.path.basename(bpy.path.abspath(script)),
                               ", ".join(ob.name for ob in objects[:3]) + ("..." if len(objects) > 3 else ""))
            job_id = core.send_selected(session.client, script, objects, passed_data=passed_data,
                                        timeout=settings.timeout, name=name)
        except Exception as exc:
            traceback.print_exc()
            self.report({'ERROR'}, "Could not start the job: %s" % exc)
            return {'CANCELLED'}
        session.tracker.add(job_id, name, script=script, objects=[ob.name for ob in objects],
                            scene_name=context.scene.name, replace=settings.replace_existing,
                            auto_load=settings.auto_load)
        ensure_timer()
        self.report({'INFO'}, "Queued %s (%s)" % (job_id, name))
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
        if session is None:
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
            session = session_from_prefs(context)
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
    bl_options = {'REGISTER', 'UNDO', 'INTERNAL'}

    job_id: StringProperty()

    def execute(self, context):
        session, info = _job_from_session(self.job_id)
        if session is None or info is None:
            return {'CANCELLED'}
        if not load_job_results(session, info, replace=context.scene.blender_jobs.replace_existing):
            self.report({'ERROR'}, info.load_error or "loading failed")
            return {'CANCELLED'}
        self.report({'INFO'}, "Loaded %s" % ", ".join(info.loaded or []) or "nothing")
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
    """Forget every finished job"""
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
    """Shut the blender-jobs server down (unfinished jobs are interrupted: with a Job Folder set, the next server can resume them); the next job starts it again"""
    bl_idname = "blender_jobs.stop_server"
    bl_label = "Stop Server"

    def execute(self, context):
        core.shutdown_session()
        tag_redraw()
        return {'FINISHED'}


def remove_job(session, job_id):
    info = session.tracker.jobs.get(job_id)
    if info is not None and not info.resting:   # finished or interrupted jobs only
        return
    if session.alive():
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
    wm = getattr(bpy.context, "window_manager", None)
    if wm is None:
        return
    for window in wm.windows:
        screen = window.screen
        if screen is None:
            continue
        for area in screen.areas:
            if area.type == 'VIEW_3D':
                area.tag_redraw()


def process_events(session):
    """One timer step without the timer: drain events, update the job list, auto-load completed
    jobs. Returns the events handled. Tests call this directly."""
    events = core.poll(session.events)
    for method, params in events:
        if method == "window/showMessage" and isinstance(params, dict):
            session.server_message = params
            print("blender-jobs: %s" % params.get("message"))
    completed = session.tracker.apply(events)
    for info in completed:
        if info.auto_load and info.loaded is None:
            load_job_results(session, info)
    if not session.alive() and any(not info.resting for info in session.tracker.jobs.values()):
        session.tracker.mark_lost("the blender-jobs server exited")
        events.append(core.Event("server/exited", {}))
    return events


def follow_shown_jobs(session, shown):
    """Follows the log of every running job while the panel shows them (``shown``), so that it
    can draw their last lines; stops following when the panel has not been drawn for a while.
    Returns the jobs it started following."""
    started = []
    for info in list(session.tracker.jobs.values()):
        if shown and info.state == "ACTIVE" and not info.following:
            try:
                core.follow_log(session.client, info)
                started.append(info)
            except Exception as exc:
                print("blender-jobs: could not follow the log of %s: %s" % (info.job_id, exc))
                info.following = False
        elif not shown and info.following:
            try:
                core.unfollow_log(session.client, info)
            except Exception:
                info.following = False
    return started


def tick():
    """bpy.app.timers callback: never blocks; returns the delay until the next call."""
    session = core.current_session()
    if session is None:
        return TIMER_INTERVAL_IDLE
    try:
        events = process_events(session)
    except Exception:
        traceback.print_exc()
        events = [None]
    drawn = getattr(session, "panel_drawn", None)
    if drawn is not None and session.alive():
        age = time.monotonic() - drawn
        if age < PANEL_SHOWN_SECONDS:
            if follow_shown_jobs(session, True):
                events = events or [None]
        elif age > PANEL_HIDDEN_SECONDS:
            follow_shown_jobs(session, False)
    if events:
        tag_redraw()
    busy = any(not info.resting for info in session.tracker.jobs.values())
    return TIMER_INTERVAL_BUSY if busy else TIMER_INTERVAL_IDLE


def ensure_timer():
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TIMER_INTERVAL_BUSY, persistent=True)


# --------------------------------------------------------------------------- panel

STATE_ICONS = {"QUEUED": 'SORTTIME', "ACTIVE": 'PLAY', "COMPLETED": 'CHECKMARK',
               "FAILED": 'ERROR', "CANCELED": 'CANCEL', "INTERRUPTED": 'PAUSE'}


def draw_progress(layout, fraction, text):
    if hasattr(layout, "progress"):  # Blender 4.0+
        layout.progress(factor=fraction, type='BAR', text=text)
    else:                            # older Blender: a text bar and the text side by side
        filled = int(round(fraction * 10))
        split = layout.split(factor=0.5)
        split.label(text=u"\u2588" * filled + u"\u2591" * (10 - filled))
        split.label(text=text)


class BLENDER_JOBS_PT_panel(bpy.types.Panel):
    bl_label = "Background Jobs"
    bl_idname = "BLENDER_JOBS_PT_panel"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "Jobs"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.blender_jobs
        col = layout.column()
        col.prop(settings, "script")
        col.prop(settings, "passed_data")
        col.prop(settings, "timeout")
        row = col.row()
        row.prop(settings, "auto_load")
        row.prop(settings, "replace_existing")
        col.operator(BLENDER_JOBS_OT_run_job.bl_idname, icon='PLAY')

        session = core.current_session()
        box = layout.box()
        if session is None:
            box.label(text="Server: not started (starts with the first job)", icon='RADIOBUT_OFF')
            return
        session.panel_drawn = time.monotonic()  # the timer follows the logs of the jobs shown
        alive = session.alive()
        row = box.row()
        row.label(text="Server: pid %s%s" % (session.client.pid, "" if alive else " (exited)"),
                  icon='RADIOBUT_ON' if alive else 'ERROR')
        row.operator(BLENDER_JOBS_OT_stop_server.bl_idname, text="", icon='QUIT')
        message = session.server_message
        if message is not None and message.get("type", 3) <= 2:  # an error or warning not yet resolved
            box.label(text=str(message.get("message", ""))[:300], icon='ERROR')
        counts = session.tracker.counts()
        grid = box.grid_flow(columns=2, even_columns=True)
        for key in ("queued", "running", "completed", "failed"):
            grid.label(text="%s %d" % (key.capitalize(), counts[key]))
        if counts["canceled"]:
            box.label(text="Canceled %d" % counts["canceled"])
        if counts["interrupted"]:
            row = box.row()
            row.label(text="Interrupted %d" % counts["interrupted"])
            op = row.operator(BLENDER_JOBS_OT_resume_job.bl_idname, text="Resume All", icon='FILE_REFRESH')
            op.job_id = ""

        if not session.tracker.jobs:
            return
        layout.operator(BLENDER_JOBS_OT_clear_finished.bl_idname, icon='TRASH')
        for info in reversed(list(session.tracker.jobs.values())):
            job_box = layout.box()
            row = job_box.row()
            row.label(text=info.name, icon=STATE_ICONS.get(info.state, 'QUESTION'))
            if info.state == "INTERRUPTED":
                for idname, icon in ((BLENDER_JOBS_OT_resume_job.bl_idname, 'FILE_REFRESH'),
                                     (BLENDER_JOBS_OT_cancel_job.bl_idname, 'X'),
                                     (BLENDER_JOBS_OT_remove_job.bl_idname, 'TRASH')):
                    op = row.operator(idname, text="", icon=icon)
                    op.job_id = info.job_id
            elif not info.final:
                op = row.operator(BLENDER_JOBS_OT_cancel_job.bl_idname, text="", icon='X')
                op.job_id = info.job_id
            else:
                if info.state == "COMPLETED":
                    op = row.operator(BLENDER_JOBS_OT_load_results.bl_idname, text="", icon='IMPORT')
                    op.job_id = info.job_id
                op = row.operator(BLENDER_JOBS_OT_remove_job.bl_idname, text="", icon='TRASH')
                op.job_id = info.job_id
            draw_progress(job_box, info.progress, "%d%%" % round(info.progress * 100))
            status = info.state.capitalize()
            if info.attempt > 1:
                status += " (attempt %d)" % info.attempt
            if info.message and not info.resting:
                status += ": " + info.message
            job_box.label(text=status[:200])
            if info.error_text():
                job_box.label(text=info.error_text()[:200], icon='ERROR')
            elif info.loaded:
                job_box.label(text="Loaded: " + ", ".join(info.loaded)[:200], icon='IMPORT')
            lines = info.last_log_lines() if (info.state == "ACTIVE" or info.state == "FAILED") else []
            if lines:
                log_col = job_box.column(align=True)
                log_col.scale_y = 0.7
                for line in lines:
                    log_col.label(text=line.expandtabs(4) or " ")


classes = (
    BLENDER_JOBS_AP_preferences,
    BLENDER_JOBS_PG_settings,
    BLENDER_JOBS_OT_run_job,
    BLENDER_JOBS_OT_cancel_job,
    BLENDER_JOBS_OT_resume_job,
    BLENDER_JOBS_OT_load_results,
    BLENDER_JOBS_OT_remove_job,
    BLENDER_JOBS_OT_clear_finished,
    BLENDER_JOBS_OT_stop_server,
    BLENDER_JOBS_PT_panel,
)
