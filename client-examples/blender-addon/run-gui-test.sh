#!/usr/bin/env bash
# The add-on in a real Blender window under Xvfb: installed from blender_jobs_addon.zip into a
# fresh Blender (its own BLENDER_USER_CONFIG / BLENDER_USER_SCRIPTS), it runs jobs from the
# sidebar; the test takes screenshots of the panel and measures a 50 ms UI timer's period while
# two jobs run (it must stay within 2x of the idle period: the sidebar stays responsive).
#   BLENDER_JOBS_JAR      server jar (default: <repo>/server/target/blender-jobs-server.jar)
#   BLENDER               Blender executable (default: blender on PATH)
#   GUI_TEST_SCREENSHOTS  a folder to copy the screenshots, result.json and Blender's log to
#                         (screenshot-sidebar.png of the README is its sidebar-running.png)
#   GUI_TEST_JOB_SECONDS  how long each progress job runs (default 4)
#   GUI_TEST_PY, GUI_TEST_BLENDER_ARGS  another script to run in the window, more Blender arguments
#                         (e.g. '--log wm.*'), for looking into what the window does
# Installs Xvfb (Debian package xvfb) when it is missing. Prints "N passed, M failed".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
jar="${BLENDER_JOBS_JAR:-$repo/server/target/blender-jobs-server.jar}"
blender="${BLENDER:-blender}"
zip="$here/target/blender_jobs_addon.zip"
for f in "$jar" "$zip"; do
  if [ ! -f "$f" ]; then
    echo "run-gui-test.sh: $f is missing; build it: cd $repo && mvn -q package -DskipTests" >&2
    exit 1
  fi
done
if ! command -v Xvfb >/dev/null 2>&1; then
  echo "run-gui-test.sh: installing xvfb" >&2
  SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q xvfb >/dev/null
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/blender-jobs-gui-test.XXXXXX")"
xvfb_pid=""
blender_pid=""
cleanup() {
  if [ -n "$blender_pid" ] && kill -0 "$blender_pid" 2>/dev/null; then kill "$blender_pid" 2>/dev/null || true; fi
  if [ -n "$xvfb_pid" ]; then kill "$xvfb_pid" 2>/dev/null || true; wait "$xvfb_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/config" "$work/scripts" "$work/data" "$work/out"
export BLENDER_USER_CONFIG="$work/config" BLENDER_USER_SCRIPTS="$work/scripts" XDG_DATA_HOME="$work/data"
unset BLENDER_JOBS_SERVER BLENDER_JOBS_CLIENT_DIR

# 1. A fresh Blender installs and enables the add-on from the zip, as Preferences > Add-ons >
#    Install would, points its Server preference at the jar, and saves its preferences.
"$blender" -b --factory-startup --python-exit-code 1 --python-expr "
import addon_utils, bpy
bpy.ops.preferences.addon_install(filepath='$zip', overwrite=True)
addon_utils.enable('blender_jobs_addon', default_set=True)
prefs = bpy.context.preferences
prefs.addons['blender_jobs_addon'].preferences.server = '$jar'
prefs.addons['blender_jobs_addon'].preferences.workers = 2
prefs.view.show_splash = False
bpy.ops.wm.save_userpref()
" > "$work/install.log" 2>&1 || { cat "$work/install.log" >&2; exit 1; }

# 2. An X server of its own (-displayfd picks a free display number).
exec 3>"$work/display"
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb_pid=$!
exec 3>&-
for _ in $(seq 100); do [ -s "$work/display" ] && break; sleep 0.1; done
display=":$(head -n1 "$work/display")"

# 3. Blender with a window (no -b, no --factory-startup: it reads the saved preferences, so the
#    add-on is enabled); simulated events switch the sidebar to the Jobs tab.
started=$(date +%s)
DISPLAY="$display" GUI_TEST_OUT="$work/out" BLENDER_JOBS_JAR="" \
  GUI_TEST_FAILING_SCRIPT="$repo/test-fixtures/jobs/raises.py" GUI_TEST_QUICK_SCRIPT="$repo/test-fixtures/jobs/bmesh_quad.py" \
  timeout 300 "$blender" ${GUI_TEST_BLENDER_ARGS:-} --enable-event-simulate --python "${GUI_TEST_PY:-$here/tests/gui_test.py}" >"$work/blender.log" 2>&1 &
blender_pid=$!
wait "$blender_pid" || true
blender_pid=""
echo "run-gui-test.sh: Blender ran $(( $(date +%s) - started )) s" >&2

# 4. Check what it measured and saved.
status=0
GUI_TEST_OUT="$work/out" python3 - "$work/blender.log" <<'PY' || status=$?
import json, os, sys
out = os.environ["GUI_TEST_OUT"]
failures, passed = [], 0
def check(ok, what):
    global passed
    if ok:
        passed += 1
        print("ok   " + what)
    else:
        failures.append(what)
        print("FAIL " + what)
try:
    result = json.load(open(os.path.join(out, "result.json")))
except (OSError, ValueError) as exc:
    print(open(sys.argv[1], errors="replace").read()[-4000:])
    print("FAIL no result from the GUI Blender (%s)" % exc)
    print("0 passed, 1 failed")
    sys.exit(1)
for line in result.get("steps", []):
    print("  " + line)
check(result.get("ok"), "the GUI test ran to its end %s" % (result.get("error") or ""))
check(result.get("panel_shown"), "the Jobs tab of the sidebar shows the panel")
check(result.get("run1") == ["FINISHED"] and result.get("status_after_run1") == "starting",
      "the first Run returned at once (%.3f s) with the server starting in the background"
      % (result.get("run1_seconds") or -1))
final = result.get("final") or []
check([f[1] for f in final] == ["COMPLETED", "COMPLETED", "COMPLETED", "FAILED"],
      "the first job and the two progress jobs completed, one failed: %r" % final)
check(any("Cube_quad" in (f[4] or []) for f in final), "the first job's result was loaded: %r" % final)
check(result.get("states_while_measuring") == ["ACTIVE", "ACTIVE"], "both jobs ran while the timer was measured")
lines = result.get("log_lines_while_running") or []
check(len(lines) == 2 and all(any(l.startswith("printed at step ") for l in job) for job in lines),
      "the running jobs' boxes have their last printed lines (followLog, job/log): %r" % lines)
idle, busy = result.get("idle") or {}, result.get("busy") or {}
check(idle.get("median") and busy.get("median") and busy["median"] <= 2 * idle["median"],
      "UI timer period while 2 jobs run: median %.1f ms (max %.1f ms; %s sidebar redraws; slowest add-on tick "
      "%s ms) vs %.1f ms idle: within 2x" % (
          1000 * (busy.get("median") or 0), 1000 * (busy.get("max") or 0), busy.get("sidebar_redraws"),
          busy.get("slowest_addon_tick_ms"), 1000 * (idle.get("median") or 0)))
details = result.get("details_text") or ""
check("Traceback (most recent call last)" in details and "fixture failure: expected" in details,
      "Details shows the failed job's whole traceback")
for name in ("running.png", "sidebar-running.png", "window.png", "window-sidebar.png"):
    path = os.path.join(out, name)
    check(os.path.isfile(path) and os.path.getsize(path) > 2000, "screenshot %s (%s bytes)" % (
        name, os.path.getsize(path) if os.path.isfile(path) else "missing"))
print("%d passed, %d failed" % (passed, len(failures)))
sys.exit(1 if failures else 0)
PY
if [ -n "${GUI_TEST_SCREENSHOTS:-}" ]; then
  mkdir -p "$GUI_TEST_SCREENSHOTS"
  cp "$work"/out/*.png "$work/out/result.json" "$work/blender.log" "$GUI_TEST_SCREENSHOTS"/ 2>/dev/null || true
fi
exit $status
