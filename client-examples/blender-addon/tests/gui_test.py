"""The add-on in a real Blender window (not -b), run by run-gui-test.sh under Xvfb.

Blender starts with the add-on installed from blender_jobs_addon.zip and enabled (a fresh user
config), and this script drives it from timers, as a user would through the UI:
  1. opens the 3D View's sidebar and switches it to the "Jobs" tab (Ctrl+Tab, simulated events,
     until the panel draws);
  2. measures the period of a 50 ms UI timer while Blender is idle;
  3. presses Run: the first one starts the server on a background thread and must return at
     once; once that job is done and both workers are up, two jobs that report progress for a
     few seconds, and one that fails;
  4. measures the timer period again while the two jobs run, and takes a screenshot then;
  5. when the jobs are done, opens the failed job's Details, takes a screenshot of the window and
     crops the sidebar out of it (the README's picture);
  6. writes everything measured to $GUI_TEST_OUT/result.json and quits.

run-gui-test.sh checks the result (both jobs completed, the timer period while they ran within 2x
of the idle period, the screenshots written). Nothing here asserts on timing by itself.
"""

import json
import os
import statistics
import sys
import time
import traceback

import bpy

OUT = os.environ["GUI_TEST_OUT"]
SLOW_SECONDS = float(os.environ.get("GUI_TEST_JOB_SECONDS", "4"))
TICK = 0.05
RESULT = {"ok": False, "steps": []}

SLOW_SCRIPT = """import time
steps = int(seconds / 0.05)
for i in range(steps):
    time.sleep(0.05)
    update_job_progress((i + 1) / steps, "step %d of %d" % (i + 1, steps))
    if i % 10 == 0:
        print("printed at step %d" % (i + 1))  # the job's box shows its last lines (followLog)
python_data = {"steps": steps, "blocks": sorted(b.name for b in passed_data_blocks)}
"""


def log(text):
    RESULT["steps"].append("%.2f %s" % (time.monotonic() - START, text))
    print("gui_test: " + text)
    sys.stdout.flush()


START = time.monotonic()


def addon():
    return sys.modules["blender_jobs_addon.ui"], sys.modules["blender_jobs_addon.core"]


def view3d():
    window = bpy.context.window_manager.windows[0]
    for area in window.screen.areas:
        if area.type == 'VIEW_3D':
            region = [r for r in area.regions if r.type == 'UI'][0]
            return window, area, region
    raise RuntimeError("no 3D View in the window")


def override(**extra):
    window, area, region = view3d()
    main = [r for r in area.regions if r.type == 'WINDOW'][0]
    return bpy.context.temp_override(window=window, area=area, region=main, screen=window.screen, **extra)


class Periods(object):
    """A 50 ms timer that records when it runs: what a UI timer gets while jobs run."""

    def __init__(self):
        self.stamps = []
        self.recording = False

    def __call__(self):
        if self.recording:
            self.stamps.append(time.monotonic())
        return TICK

    def measure(self):
        self.stamps = []
        self.recording = True

    def stop(self):
        self.recording = False
        gaps = [b - a for a, b in zip(self.stamps, self.stamps[1:])]
        return {"median": statistics.median(gaps) if gaps else None, "max": max(gaps) if gaps else None,
                "count": len(gaps), "gaps_ms": [round(g * 1000, 1) for g in gaps]}


PERIODS = Periods()

#: Region draws counted by draw handlers: what Blender redraws while the timer is measured.
DRAWS = {}


def _counter(key):
    def count():
        DRAWS[key] = DRAWS.get(key, 0) + 1
    return count


for _space, _regions in ((bpy.types.SpaceView3D, ('WINDOW', 'UI')), (bpy.types.SpaceOutliner, ('WINDOW',)),
                         (bpy.types.SpaceProperties, ('WINDOW',)), (bpy.types.SpaceDopeSheetEditor, ('WINDOW',))):
    for _region in _regions:
        _space.draw_handler_add(_counter("%s/%s" % (_space.__name__, _region)), (), _region, 'POST_PIXEL')


def screenshot(name, crop_sidebar=False):
    """The whole window (screen.screenshot), and optionally the sidebar region cut out of it."""
    path = os.path.join(OUT, name + ".png")
    with override():
        bpy.ops.screen.screenshot(filepath=path)
    if not crop_sidebar:
        return path
    import array
    window, area, region = view3d()
    image = bpy.data.images.load(path)
    width, height = image.size
    pixels = array.array('f', [0.0]) * (width * height * 4)
    image.pixels.foreach_get(pixels)  # rows from the bottom, like window coordinates
    crop = array.array('f')
    for row in range(region.y, region.y + region.height):
        start = (row * width + region.x) * 4
        crop.extend(pixels[start:start + region.width * 4])
    bpy.data.images.remove(image)
    out = bpy.data.images.new(name + "-sidebar", region.width, region.height, alpha=True)
    out.pixels.foreach_set(crop)
    out.filepath_raw = os.path.join(OUT, name + "-sidebar.png")
    out.file_format = 'PNG'
    out.save()
    RESULT["sidebar_size"] = [region.width, region.height]
    return out.filepath_raw


def steps():
    """The test as a generator of waits (seconds): the timer below runs it."""
    ui, core = addon()
    window, area, region = view3d()
    area.spaces.active.show_region_ui = True
    yield 0.5
    # Ctrl+Tab over the sidebar cycles its tabs: until ours draws.
    for attempt in range(8):
        drawn = ui.BLENDER_JOBS_PT_panel.last_draw
        window, area, region = view3d()
        # Over the first panel's header: lower, a short tab leaves the sidebar transparent and the
        # event would reach the viewport (where Ctrl+Tab opens the mode pie menu).
        x, y = region.x + region.width // 2, region.y + region.height - 15
        window.event_simulate(type='MOUSEMOVE', value='NOTHING', x=x, y=y)
        yield 0.3
        if ui.BLENDER_JOBS_PT_panel.last_draw > drawn + 0.01 and attempt > 0:
            break
        window.event_simulate(type='TAB', value='PRESS', x=x, y=y, ctrl=True)
        window.event_simulate(type='TAB', value='RELEASE', x=x, y=y, ctrl=True)
        yield 0.5
        region.tag_redraw()
        yield 0.3
        if ui.BLENDER_JOBS_PT_panel.last_draw > drawn:
            break
    RESULT["panel_shown"] = ui.BLENDER_JOBS_PT_panel.last_draw > 0
    RESULT["sidebar_width"] = region.width
    log("sidebar %dx%d, panel drawn: %s" % (region.width, region.height, RESULT["panel_shown"]))

    # Idle period of a UI timer.
    PERIODS.measure()
    DRAWS.clear()
    yield 2.0
    RESULT["idle"] = PERIODS.stop()
    RESULT["idle"]["region_draws"] = dict(DRAWS)
    log("idle timer period %r" % RESULT["idle"])

    # The panel's settings, as a user would fill them in.
    scene = bpy.context.scene
    settings = scene.blender_jobs
    slow = os.path.join(OUT, "progress_job.py")
    with open(slow, "w") as f:
        f.write(SLOW_SCRIPT)
    settings.script = slow
    settings.passed_data = json.dumps({"seconds": SLOW_SECONDS})
    # A mesh as the extra data block: a material would show its preview icon, which Blender
    # renders in the background (seconds of viewport-speed redraws under software OpenGL).
    item = settings.blocks.add()
    item.kind, item.name = "meshes", bpy.data.objects["Cube"].data.name
    cube = bpy.data.objects.get("Cube")
    with override():
        for ob in bpy.context.view_layer.objects:
            ob.select_set(ob is cube)
        bpy.context.view_layer.objects.active = cube
        # The first Run starts the server: it must return at once (the server starts on a thread).
        started = time.monotonic()
        RESULT["run1"] = sorted(bpy.ops.blender_jobs.run_job(script=os.environ["GUI_TEST_QUICK_SCRIPT"]))
        RESULT["run1_seconds"] = time.monotonic() - started
        RESULT["status_after_run1"] = core.current_session().status
    log("Run pressed (it took %.3f s; server %s)" % (RESULT["run1_seconds"], RESULT["status_after_run1"]))
    session = core.current_session()
    first = list(session.tracker.jobs.values())[0]
    deadline = time.monotonic() + 180
    while not first.final and time.monotonic() < deadline:
        yield 0.1
    RESULT["server_ready_seconds"] = time.monotonic() - started
    # Both workers up (they start with the server; a loaded machine may take a while), so that
    # the two progress jobs run at the same time.
    while time.monotonic() < deadline:
        stats = session.client.get_stats()
        if stats.get("freeWorkers", 0) >= 2:
            break
        yield 0.2
    log("first job %s after %.1f s; workers %r" % (first.state, RESULT["server_ready_seconds"],
                                                   [w.get("state") for w in stats.get("workerDetails", [])]))
    # Loading the first job's result (and selecting) changed the viewport, which Blender then
    # redraws a few times (viewport anti-aliasing samples; each costs up to a second under
    # software OpenGL): the measurement below is about the add-on, so let the viewport settle.
    settle_started = time.monotonic()
    while time.monotonic() - settle_started < 60:
        DRAWS.clear()
        yield 1.0
        if not DRAWS.get("SpaceView3D/WINDOW"):
            break
    RESULT["viewport_settled_seconds"] = round(time.monotonic() - settle_started, 1)
    log("viewport settled after %.1f s" % RESULT["viewport_settled_seconds"])
    with override():
        RESULT["run2"] = sorted(bpy.ops.blender_jobs.run_job())
        RESULT["run3"] = sorted(bpy.ops.blender_jobs.run_job())
        RESULT["run4"] = sorted(bpy.ops.blender_jobs.run_job(script=os.environ["GUI_TEST_FAILING_SCRIPT"]))
    jobs = list(session.tracker.jobs.values())
    slow_jobs = jobs[1:3]
    # Wait until both slow jobs run, then measure while they report progress.
    deadline = time.monotonic() + 60
    while not all(j.state == "ACTIVE" for j in slow_jobs) and time.monotonic() < deadline:
        yield 0.05
    log("jobs running: %r" % slow_jobs)
    PERIODS.measure()
    DRAWS.clear()
    redraws = ui.PACER.count
    yield min(2.5, SLOW_SECONDS * 0.6)
    RESULT["busy"] = PERIODS.stop()
    RESULT["busy"]["sidebar_redraws"] = ui.PACER.count - redraws
    RESULT["busy"]["redraw_interval"] = ui.PACER.interval
    RESULT["busy"]["region_draws"] = dict(DRAWS)
    RESULT["busy"]["slowest_addon_tick_ms"] = round(ui.PACER.slowest_tick * 1000, 1)
    RESULT["states_while_measuring"] = [j.state for j in slow_jobs]
    RESULT["log_lines_while_running"] = [j.last_log_lines() for j in slow_jobs]
    log("timer period while the jobs run %r" % RESULT["busy"])
    screenshot("running", crop_sidebar=True)
    os.replace(os.path.join(OUT, "running-sidebar.png"), os.path.join(OUT, "sidebar-running.png"))
    deadline = time.monotonic() + 120
    while not all(j.final for j in jobs) and time.monotonic() < deadline:
        yield 0.1
    yield 0.5
    PERIODS.measure()
    DRAWS.clear()
    yield 2.0
    RESULT["after"] = PERIODS.stop()
    RESULT["after"]["region_draws"] = dict(DRAWS)
    log("timer period after the jobs %r" % RESULT["after"])
    RESULT["final"] = [(j.name, j.state, j.attempt, j.error_text(), j.loaded) for j in jobs]
    log("final %r" % RESULT["final"])
    failed = [j for j in jobs if j.state == "FAILED"]
    if failed:
        # The Details popup opens at the mouse: over the viewport, not over the sidebar.
        window, area, region = view3d()
        window.event_simulate(type='MOUSEMOVE', value='NOTHING', x=area.x + area.width // 3,
                              y=area.y + area.height // 2)
        yield 0.3
        with override():
            RESULT["details"] = sorted(bpy.ops.blender_jobs.show_details(job_id=failed[0].job_id))
        text = bpy.data.texts.get("blender-jobs %s" % failed[0].job_id)
        RESULT["details_text"] = text.as_string() if text else None
    yield 1.0
    screenshot("window", crop_sidebar=True)
    RESULT["ok"] = True


def driver(gen=steps()):
    try:
        return next(gen)
    except StopIteration:
        pass
    except Exception:
        RESULT["error"] = traceback.format_exc()
        print(RESULT["error"])
    with open(os.path.join(OUT, "result.json"), "w") as f:
        json.dump(RESULT, f, indent=2)
    bpy.ops.wm.quit_blender()
    return None


bpy.app.timers.register(PERIODS, first_interval=TICK, persistent=True)
bpy.app.timers.register(driver, first_interval=1.0, persistent=True)
