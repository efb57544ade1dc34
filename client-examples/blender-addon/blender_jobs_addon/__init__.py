"""Blender Jobs: run Python scripts on the selected objects in warm background Blenders.

The add-on's original use (send objects and a script to a headless Blender, watch its progress,
get the results back) rebuilt on the blender-jobs server. See README.md next to this folder.

Layout:
  core.py  plain functions (send_selected, poll, load_data_blocks, the server session);
           usable without any UI, e.g. from tests in background Blender
  ui.py    preferences, scene settings, operators, the 3D view sidebar panel, the timer
"""

bl_info = {
    "name": "Blender Jobs (background processing)",
    "author": "blender-jobs",
    "version": (0, 1, 0),
    "blender": (2, 93, 0),
    "location": "3D Viewport > Sidebar > Jobs",
    "description": "Run a Python script on the selected objects in a warm background Blender "
                   "(blender-jobs server), with progress, cancel, and results loaded back",
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


def register():
    for cls in ui.classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.blender_jobs = bpy.props.PointerProperty(type=ui.BLENDER_JOBS_PG_settings)
    ui.ensure_timer()
    atexit.register(_shutdown_at_exit)


def unregister():
    atexit.unregister(_shutdown_at_exit)
    if bpy.app.timers.is_registered(ui.tick):
        bpy.app.timers.unregister(ui.tick)
    core.shutdown_session()
    del bpy.types.Scene.blender_jobs
    for cls in reversed(ui.classes):
        bpy.utils.unregister_class(cls)
