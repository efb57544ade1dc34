#!/usr/bin/env python3
"""blender-jobs demo: runs example jobs on a 2-worker server with a live progress bar per job.

    python3 client-examples/python/demo.py                 # the four example jobs
    python3 client-examples/python/demo.py my_job.py ...   # your own scripts instead
    python3 client-examples/python/demo.py --data '{"delay": 0.1}'   # passed data for every job

The example jobs (test-fixtures/jobs) each get the "Cube" object of test-fixtures/blend/library.blend
("Tetra" for metaballs.py) as passed data blocks; timeout_loop.py runs with a 3 s timeout and is
expected to fail with TIMED_OUT, the others to complete. Your own scripts also get the library's
"Cube" (unless --no-library) and are expected to complete.

Exit code: 0 if every job ended as expected, 1 otherwise (2 for usage errors, 130 on Ctrl-C).
"""

import argparse
import json
import os
import shutil
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from blender_jobs_client import BlenderJobsClient, BlenderJobsError, RESTING_STATES, find_server  # noqa: E402
from blender_jobs_cli import UsageError, parse_data  # noqa: E402

FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "test-fixtures"))
JOBS_DIR = os.path.join(FIXTURES, "jobs")
LIBRARY = os.path.join(FIXTURES, "blend", "library.blend")


class JobRow(object):
    """What the display knows about one job."""

    def __init__(self, label, script, options, expect_state="COMPLETED", expect_kind=None):
        self.label = label
        self.script = script
        self.options = options
        self.expect_state = expect_state
        self.expect_kind = expect_kind
        self.job_id = None
        self.state = "SUBMITTING"
        self.progress = 0.0
        self.message = ""
        self.final = None
        self.last_printed = 0.0  # non-TTY: when the last progress line went out
        self.printed_progress = None


def example_jobs(use_library):
    def blocks(name):
        return {"library": LIBRARY, "names": {"objects": [name]}} if use_library else None

    return [
        JobRow("remesh", os.path.join(JOBS_DIR, "remesh.py"), {"passed_data_blocks": blocks("Cube")}),
        JobRow("bmesh_quad", os.path.join(JOBS_DIR, "bmesh_quad.py"), {"passed_data_blocks": blocks("Cube")}),
        JobRow("metaballs", os.path.join(JOBS_DIR, "metaballs.py"),
               {"passed_data": {"delay": 0.5}, "passed_data_blocks": blocks("Tetra")}),
        JobRow("timeout_loop", os.path.join(JOBS_DIR, "timeout_loop.py"),
               {"timeout": 3, "passed_data_blocks": blocks("Cube")},
               expect_state="FAILED", expect_kind="TIMED_OUT"),
    ]


class Display(object):
    """Live progress: redraws all rows in place on a terminal; on a pipe or file prints one line
    per progress change (at most every 0.5 s per job) and one per state change."""

    COLORS = {"COMPLETED": "\x1b[32m", "FAILED": "\x1b[31m", "CANCELED": "\x1b[33m", "INTERRUPTED": "\x1b[35m",
              "ACTIVE": "\x1b[36m"}
    RESET = "\x1b[0m"

    def __init__(self, rows, stream, tty):
        self.rows = rows
        self.stream = stream
        self.tty = tty
        self.lock = threading.Lock()
        self.drawn = 0
        self.last_lines = None
        self.started = time.monotonic()
        self.label_width = max(len(r.label) for r in rows)

    # -- callbacks (dispatcher thread)

    def on_progress(self, params):
        with self.lock:  # held by main() while it submits, so the row has its jobId by now
            row = self._row(params.get("jobId"))
            if row is None:
                return
            row.progress = params.get("progress", row.progress)
            if params.get("message") is not None:
                row.message = params["message"]
            if not self.tty:
                now = time.monotonic()
                if now - row.last_printed >= 0.5 and row.progress != row.printed_progress:
                    row.last_printed = now
                    row.printed_progress = row.progress
                    self._line("%s %5.1f%%  %s" % (row.label.ljust(self.label_width), row.progress * 100,
                                                   row.message))

    def on_state_changed(self, params):
        with self.lock:  # held by main() while it submits, so the row has its jobId by now
            row = self._row(params.get("jobId"))
            if row is None:
                return
            row.state = params.get("state", row.state)
            if row.state == "COMPLETED":
                row.progress = 1.0
            if row.state in RESTING_STATES:  # final, or INTERRUPTED (the server stopped)
                row.final = params
            if not self.tty:
                text = "%s %s" % (row.label.ljust(self.label_width), row.state)
                if row.state in ("ACTIVE", "FAILED", "CANCELED", "INTERRUPTED") and row.progress:
                    text += " at %.1f%%" % (row.progress * 100)
                error = params.get("error")
                if error:
                    text += ": %s %s" % (error.get("kind"), error.get("message"))
                if params.get("attempt", 0) > 1:
                    text += " (attempt %d)" % params["attempt"]
                self._line(text)

    def _row(self, job_id):
        for row in self.rows:
            if row.job_id is not None and row.job_id == job_id:
                return row
        return None

    def _line(self, text):
        self.stream.write("[%6.1fs] %s\n" % (time.monotonic() - self.started, text))
        self.stream.flush()

    # -- terminal drawing (main thread)

    def redraw(self):
        if not self.tty:
            return
        with self.lock:
            width = max(40, shutil.get_terminal_size((100, 24)).columns - 1)
            lines = [self._bar_line(row, width) for row in self.rows]
            if lines == self.last_lines:
                return
            out = []
            if self.drawn:
                out.append("\x1b[%dF" % self.drawn)  # to the start of the first row
            for line in lines:
                out.append("\x1b[2K" + line + "\n")
            self.drawn = len(lines)
            self.last_lines = lines
            self.stream.write("".join(out))
            self.stream.flush()

    def _bar_line(self, row, width):
        bar_width = 24
        filled = int(round(row.progress * bar_width))
        bar = "#" * filled + "-" * (bar_width - filled)
        state = row.state
        if row.final is not None and row.final.get("error"):
            state = "%s %s" % (state, row.final["error"].get("kind"))
        text = "%s [%s] %5.1f%%  %-10s %s" % (row.label.ljust(self.label_width), bar, row.progress * 100,
                                              state, row.message)
        text = text[:width]
        color = self.COLORS.get(row.state)
        return color + text + self.RESET if color else text


def describe_result(client, row, out):
    final = row.final or {}
    state = final.get("state", row.state)
    expected = state == row.expect_state and (row.expect_kind is None
                                             or (final.get("error") or {}).get("kind") == row.expect_kind)
    try:
        elapsed = client.get_progress(row.job_id).get("elapsedMs")
    except BlenderJobsError:
        elapsed = None
    head = "%s (%s): %s" % (row.label, row.job_id, state)
    if elapsed is not None:
        head += " after %.2f s" % (elapsed / 1000.0)
    head += " - as expected" if expected else " - UNEXPECTED (expected %s%s)" % (
        row.expect_state, " " + row.expect_kind if row.expect_kind else "")
    out.write(head + "\n")
    if state == "COMPLETED":
        try:
            data = client.get_python_data(row.job_id)
            text = json.dumps(data, ensure_ascii=False, sort_keys=True)
            out.write("    python data: %s\n" % (text if len(text) <= 500 else text[:500] + "..."))
            blocks = client.get_data_blocks(row.job_id)
            if blocks.get("count"):
                listing = "; ".join("%s: %s" % (kind, ", ".join(names))
                                    for kind, names in sorted(blocks["blocks"].items()))
                out.write("    data blocks: %s\n    library: %s\n" % (listing, blocks.get("library")))
            else:
                out.write("    data blocks: none\n")
        except BlenderJobsError as exc:
            out.write("    could not fetch results: %s\n" % exc)
            expected = False
    else:
        error = final.get("error") or {}
        out.write("    error: %s: %s\n" % (error.get("kind", "?"), error.get("message", "(no message)")))
        if error.get("traceback") and error.get("kind") != "TIMED_OUT":
            for line in error["traceback"].rstrip().splitlines()[-6:]:
                out.write("      | %s\n" % line)
    return expected


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scripts", nargs="*", help="Blender Python scripts to run instead of the examples")
    parser.add_argument("--server", default=None, metavar="CMD",
                        help="the server command (default: $BLENDER_JOBS_SERVER, blender-jobs-server on PATH, "
                             "then this checkout's build output)")
    parser.add_argument("--jar", default=None, help="run this server jar instead (with the server's JVM flags)")
    parser.add_argument("--data", default=None, metavar="JSON|@FILE",
                        help="passed data for every job: a JSON object (or @file.json) whose keys become globals "
                             "of the scripts; for the examples it is merged over their own")
    parser.add_argument("--workers", type=int, default=2, help="Blender workers (default: 2)")
    parser.add_argument("--blender", default=None, help="Blender executable (default: the server finds one)")
    parser.add_argument("--timeout", type=float, default=300, help="give up after this many seconds (default: 300)")
    parser.add_argument("--no-library", action="store_true",
                        help="do not pass data blocks from test-fixtures/blend/library.blend")
    parser.add_argument("--workspace", default=None, metavar="DIR",
                        help="the folder the jobs belong to: the server keeps them and their results in a "
                             "per-user directory of it, so the paths printed stay valid (default: the current folder)")
    parser.add_argument("--server-log", action="store_true", help="echo the server's log to stderr")
    args = parser.parse_args(argv)

    try:
        extra_data = parse_data(args.data)
    except UsageError as exc:
        parser.error(str(exc))
    use_library = not args.no_library
    if args.scripts:
        rows = []
        for path in args.scripts:
            if not os.path.isfile(path):
                parser.error("no such script: %s" % path)
            options = {"passed_data_blocks": {"library": LIBRARY, "names": {"objects": ["Cube"]}}} if use_library else {}
            rows.append(JobRow(os.path.basename(path), os.path.abspath(path), options))
    else:
        rows = example_jobs(use_library)
    if extra_data:
        for row in rows:
            row.options["passed_data"] = dict(row.options.get("passed_data") or {}, **extra_data)
    missing = [r.script for r in rows if not os.path.isfile(r.script)]
    if use_library and not os.path.isfile(LIBRARY):
        missing.append(LIBRARY)
    if missing:
        sys.stderr.write("demo: missing files: %s\n" % ", ".join(missing))
        return 1

    out = sys.stdout
    tty = out.isatty() and os.environ.get("TERM") != "dumb"
    if tty and os.name == "nt":
        os.system("")  # enables ANSI escapes in the Windows console
    display = Display(rows, out, tty)

    try:
        client = BlenderJobsClient(jar=args.jar, workers=args.workers, blender=args.blender,
                                   server=find_server(server=args.server, jar=args.jar, option="the --server option")
                                   if args.jar is None else None,
                                   workspace=args.workspace or os.getcwd(),
                                   stderr_echo=sys.stderr if args.server_log else None)
    except (OSError, BlenderJobsError) as exc:
        sys.stderr.write("demo: %s\n" % exc)
        return 1

    ok = True
    try:
        info = client.initialize()
        blender = info.get("blender") or {}
        if not blender.get("available"):
            sys.stderr.write("demo: the server has no Blender: %s\n" % blender.get("problem"))
            return 1
        out.write("blender-jobs %s: %d jobs on %d workers, Blender %s (%s)\n" % (
            info["serverInfo"]["version"], len(rows), info["workers"], blender.get("version"), blender.get("path")))
        out.write("jobs and results kept in %s%s\n\n" % (
            info.get("stateDir"), " (temporary: %s)" % info.get("stateDirNote", "deleted at exit")
            if info.get("stateDirTemporary") else ""))
        out.flush()
        client.on_progress(display.on_progress)
        client.on_state_changed(display.on_state_changed)

        for row in rows:
            options = dict((k, v) for k, v in row.options.items() if v is not None)
            with display.lock:
                job = client.add_job(script=row.script, name=row.label, **options)
                row.job_id = job["jobId"]
                if row.state == "SUBMITTING":
                    row.state = job["state"]

        if tty:
            out.write("\x1b[?25l")  # hide the cursor while drawing
        try:
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                display.redraw()
                with display.lock:
                    done = all(r.final is not None for r in rows)
                if done or not client.is_alive():
                    break
                time.sleep(0.1)
            # Collect the final states (returns at once for finished jobs).
            remaining = max(0.1, deadline - time.monotonic())
            finals = client.wait_for_jobs([r.job_id for r in rows], timeout=remaining)
            for row in rows:
                row.final = finals[row.job_id]
                row.state = row.final["state"]
            display.redraw()
        finally:
            if tty:
                out.write("\x1b[?25h")
                out.flush()

        out.write("\n")
        for row in rows:
            ok = describe_result(client, row, out) and ok
        out.write("\n%s\n" % ("Every job ended as expected." if ok else "Some jobs did NOT end as expected."))
        return 0 if ok else 1
    except KeyboardInterrupt:
        out.write("\ninterrupted; stopping the server (its unfinished jobs become INTERRUPTED)\n")
        return 130
    except BlenderJobsError as exc:
        sys.stderr.write("\ndemo: %s\n" % exc)
        tail = client.stderr_tail(20)
        if tail and not args.server_log:
            sys.stderr.write("last server log lines:\n  %s\n" % "\n  ".join(tail))
        return 1
    finally:
        try:
            client.close()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    sys.exit(main())
