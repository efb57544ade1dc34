"""Blender Jobs: run Python scripts in warm background Blenders, on the selected objects, other
data blocks or a copy of the open file.

The "Background Processing" add-on's use (send data and a script to a headless Blender, watch its
progress, get the results back) rebuilt on the blender-jobs server. See README.md next to this folder.

Layout:
  core.py                 plain functions (prepare_job, send_selected, poll, load_data_blocks, the
                          server session); usable without any UI, e.g. from tests in background Blender
  ui.py                   preferences, scene settings, operators, the 3D view sidebar panel, the timer
  blender_jobs_client.py  the standard-library client (put here by `mvn package` when it builds
                          blender_jobs_addon.zip; in a checkout, client-examples/python is used)
"""

bl_info = {
    "name": "Blender Jobs (background processing)",
    "author": "blender-jobs",
    "version": (0, 2, 0),
    "blender": (2, 93, 0),
    "location": "3D Viewport > Sidebar > Jobs",
    "description": "Run Python scripts in warm background Blenders (blender-jobs server) on the selected "
                   "objects, other data blocks or a copy of the open file, with progress, retries, "
                   "tracebacks, and results loaded back and kept across restarts",
    "category": "Object",
}

import atexit

if "bpy" in locals():  # script reload (F3 > Reload Scripts)
    import importlib
    importlib.reload(core)  # noqa: F821
    importlib.reload(ui)    # noqa: F821
else:
    from . import core, ui

import bpy


def _shutdown_at_exit():
    try:
        core.shutdown_session(timeout=5.0)
    except Exception:
        pass


@bpy.app.handlers.persistent
def _file_loaded(_unused):
    """A file from another folder names another workspace: an idle server (no job pending, queued
    or running) stops, and the next job (or Start) starts one on the new file's workspace."""
    session = core.current_session()
    if session is None or session.status != core.READY or session.options.get("state_dir"):
        return
    if session.options.get("workspace") != core.default_workspace() and not session.tracker.busy():
        core.shutdown_session()


def register():
    for cls in ui.classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.blender_jobs = bpy.props.PointerProperty(type=ui.BLENDER_JOBS_PG_settings)
    ui.ensure_timer()
    if _file_loaded not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(_file_loaded)
    atexit.register(_shutdown_at_exit)


def unregister():
    atexit.unregister(_shutdown_at_exit)
    if _file_loaded in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_file_loaded)
    if bpy.app.timers.is_registered(ui.tick):
        bpy.app.timers.unregister(ui.tick)
    core.shutdown_session()
    del bpy.types.Scene.blender_jobs
    for cls in reversed(ui.classes):
        bpy.utils.unregister_class(cls)
