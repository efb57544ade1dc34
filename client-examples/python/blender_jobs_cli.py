"""blender-jobs: run Blender Python scripts in the background, from a terminal or a script.

    blender-jobs run my_job.py --data '{"size": 2}'     # progress bar, then the results
    blender-jobs list                                    # the jobs of this folder
    blender-jobs result last --json                      # python_data and data blocks as JSON

Each invocation starts a blender-jobs server (found like every client finds it: --server,
$BLENDER_JOBS_SERVER, blender-jobs-server on PATH, a checkout's build output) and names the
current folder as its workspace, so the server keeps the jobs and their results in a per-user
directory of that folder (<data home>/blender-jobs/workspaces/...): paths printed stay valid, and
list / show / result see the jobs of earlier invocations. The server stops when the command ends;
a job still running then (Ctrl-C) becomes INTERRUPTED and `blender-jobs resume` runs it again.

Standard library only, like the client module it drives (blender_jobs_client).
"""

import argparse
import json
import os
import shutil
import sys
import threading
import time

from blender_jobs_client import (
    FINAL_STATES, JOB_STATES, RESTING_STATES, BlenderJobsClient, BlenderJobsError, JsonRpcError, ServerNotFound,
    __version__, find_server)

PROG = "blender-jobs"

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    pass


# --------------------------------------------------------------------------- arguments

def _parser():
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("server and output")
    group.add_argument("--server", metavar="CMD",
                       help="the server command, e.g. /opt/blender-jobs-server/bin/blender-jobs-server (default: "
                            "$BLENDER_JOBS_SERVER, then blender-jobs-server on PATH, then a checkout's build output)")
    group.add_argument("--blender", metavar="PATH", help="the Blender the workers run (default: the server finds one)")
    group.add_argument("--workers", type=_positive_int, metavar="N",
                       help="Blender workers (default: 1 for run, the server's default for resume)")
    group.add_argument("--workspace", metavar="DIR",
                       help="the folder whose jobs these are (default: the current folder)")
    group.add_argument("--state-dir", metavar="DIR", help="keep jobs in this directory instead of the workspace's")
    group.add_argument("--json", action="store_true", help="print one JSON document on stdout (for scripts)")
    group.add_argument("--server-log", action="store_true", help="echo the server's log to stderr")

    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0],
        epilog="Run `%s COMMAND --help` for a command's options. Jobs are kept per folder; see --workspace." % PROG)
    parser.add_argument("--version", action="version", version="%s %s" % (PROG, __version__))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser("run", parents=[common], help="run a script as a job and wait for it",
                              description="Runs SCRIPT in a background Blender, shows its progress and prints "
                                          "its results. Exit code 0 when it completed, 1 when not.")
    run.add_argument("script", help="the Blender Python script (.py)")
    run.add_argument("--data", metavar="JSON|@FILE",
                     help="passed data: a JSON object whose keys become globals of the script, or @file.json")
    run.add_argument("--blend", metavar="FILE", help="run the script in (a private copy of) this .blend")
    run.add_argument("--library", metavar="FILE",
                     help="append data blocks from this .blend before the script runs (passed_data_blocks)")
    run.add_argument("--blocks", metavar="KIND=NAMES", action="append", default=[],
                     help="which blocks of --library, e.g. objects=Cube,Tetra or materials=Metal (repeatable; "
                          "default: all)")
    run.add_argument("--timeout", type=_non_negative_float, metavar="S", help="seconds per attempt (default: none)")
    run.add_argument("--attempts", type=_positive_int, metavar="N", help="attempts before the job fails (default 1)")
    run.add_argument("--name", help="the job's name (default: the script's file name)")
    run.add_argument("--follow", action="store_true", help="also print the script's console output as it runs")

    lst = commands.add_parser("list", parents=[common], help="list the jobs of this folder")
    lst.add_argument("--state", action="append", choices=JOB_STATES, help="only jobs in this state (repeatable)")

    show = commands.add_parser("show", parents=[common], help="everything about a job: state, error, traceback, log")
    show.add_argument("job", help="a job id, a unique part of one, or `last`")
    show.add_argument("--log", action="store_true", help="print the whole log instead of its last lines")

    result = commands.add_parser("result", parents=[common], help="a completed job's python_data and data blocks")
    result.add_argument("job", help="a job id, a unique part of one, or `last`")

    cancel = commands.add_parser("cancel", parents=[common], help="cancel jobs (interrupted ones: they stay canceled)")
    cancel.add_argument("jobs", nargs="*", metavar="job", help="job ids (or `last`)")
    cancel.add_argument("--all", action="store_true", help="every queued, running or interrupted job")

    resume = commands.add_parser("resume", parents=[common],
                                 help="run interrupted jobs again and wait for them",
                                 description="Runs INTERRUPTED jobs again (all of them without job ids), with "
                                             "progress bars. Exit code 0 when every one completed.")
    resume.add_argument("jobs", nargs="*", metavar="job", help="job ids (default: every interrupted job)")
    resume.add_argument("--follow", action="store_true", help=argparse.SUPPRESS)

    remove = commands.add_parser("remove", parents=[common], help="forget finished jobs and delete their files")
    remove.add_argument("jobs", nargs="+", metavar="job", help="job ids (or `last`)")
    return parser


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def parse_data(text):
    """--data: a JSON object, or @path of a file holding one."""
    if text is None:
        return None
    source = "--data"
    if text.startswith("@"):
        path = text[1:]
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise UsageError("--data %s: cannot read %s: %s" % ("@" + path, path, exc.strerror or exc))
        source = path
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError("%s is not valid JSON: %s" % (source, exc))
    if not isinstance(value, dict):
        raise UsageError("%s must be a JSON object such as {\"size\": 2}, not %s" % (source, type(value).__name__))
    return value


def parse_blocks(library, specs):
    if not library:
        if specs:
            raise UsageError("--blocks selects blocks of --library; give --library too")
        return None
    if not os.path.isfile(library):
        raise UsageError("--library %s does not exist" % library)
    blocks = {"library": os.path.abspath(library)}
    names = {}
    for spec in specs:
        kind, sep, listed = spec.partition("=")
        values = [n.strip() for n in listed.split(",") if n.strip()]
        if not sep or not kind.strip() or not values:
            raise UsageError("--blocks %r: write KIND=NAME[,NAME...], e.g. objects=Cube" % spec)
        names.setdefault(kind.strip(), []).extend(values)
    if names:
        blocks["names"] = names
    return blocks


# --------------------------------------------------------------------------- output

class Output(object):
    """Where people read: stdout for results; progress on stdout unless --json."""

    def __init__(self, as_json, stream=None):
        self.as_json = as_json
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() and os.environ.get("TERM") != "dumb"

    def line(self, text=""):
        if not self.as_json:
            self.stream.write(text + "\n")
            self.stream.flush()

    def document(self, value):
        if self.as_json:
            self.stream.write(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
            self.stream.flush()


def note(text):
    sys.stderr.write("%s: %s\n" % (PROG, text))
    sys.stderr.flush()


class Progress(object):
    """Progress of jobs: bars redrawn in place on a terminal, else one plain line per change (a
    new whole percent, a new message or a new state). Fed by the client's callbacks."""

    BAR = 24

    def __init__(self, out, labels):
        self.out = out
        self.lock = threading.Lock()
        self.rows = dict((job_id, {"label": label, "state": "QUEUED", "progress": 0.0, "message": "", "attempt": 1})
                         for job_id, label in labels.items())
        self.order = list(labels)
        self.width = max([len(l) for l in labels.values()] + [4])
        self.drawn = 0
        self.enabled = not out.as_json
        self.last_plain = {}

    def on_progress(self, params):
        self._update(params.get("jobId"), progress=params.get("progress"), message=params.get("message"))

    def on_state(self, params):
        state = params.get("state")
        changes = {"state": state, "attempt": params.get("attempt")}
        if state == "COMPLETED":
            changes["progress"] = 1.0
        elif state == "QUEUED" or (state == "ACTIVE" and params.get("previousState") == "QUEUED"):
            changes["progress"], changes["message"] = 0.0, ""  # a (re)try starts at 0
        self._update(params.get("jobId"), **changes)

    def _update(self, job_id, **changes):
        with self.lock:
            row = self.rows.get(job_id)
            if row is None:
                return
            for key, value in changes.items():
                if value is not None:
                    row[key] = value
            if self.enabled:
                self._draw(job_id)

    def _text(self, row, bar=True):
        percent = "%3d%%" % int(row["progress"] * 100)
        state = row["state"] + (" (attempt %d)" % row["attempt"] if row.get("attempt", 1) > 1 else "")
        message = row["message"]
        if bar:
            filled = int(round(row["progress"] * self.BAR))
            return "%s [%s] %s %-10s %s" % (row["label"].ljust(self.width), "#" * filled + "-" * (self.BAR - filled),
                                           percent, state, message)
        return "%s %s %s%s" % (row["label"], percent, state, " " + message if message else "")

    def _draw(self, job_id):
        stream = self.out.stream
        if not self.out.tty:
            row = self.rows[job_id]
            key = (int(row["progress"] * 100), row["state"], row["message"], row.get("attempt"))
            if self.last_plain.get(job_id) != key:
                self.last_plain[job_id] = key
                stream.write(self._text(row, bar=False) + "\n")
                stream.flush()
            return
        self._redraw()

    def _redraw(self):
        stream = self.out.stream
        columns = max(40, shutil.get_terminal_size((100, 24)).columns - 1)
        parts = ["\x1b[%dF" % self.drawn] if self.drawn else []
        for job_id in self.order:
            parts.append("\x1b[2K" + self._text(self.rows[job_id])[:columns] + "\n")
        self.drawn = len(self.order)
        stream.write("".join(parts))
        stream.flush()

    def above(self, text):
        """Prints text (log output of --follow) above the bars."""
        with self.lock:
            stream = self.out.stream
            if self.out.tty and self.drawn:
                stream.write("\x1b[%dF\x1b[J" % self.drawn)
                self.drawn = 0
            stream.write(text if text.endswith("\n") else text + "\n")
            if self.out.tty and self.enabled:
                self._redraw()
            stream.flush()


class LogFollower(object):
    """--follow: prints what a job writes to its log file as it arrives (the server writes the
    log through chunk by chunk; the open file stays valid when log.txt.part becomes log.txt)."""

    def __init__(self, client, job_id, write):
        self.client = client
        self.job_id = job_id
        self.write = write
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="blender-jobs-follow")
        self.thread.daemon = True

    def start(self):
        self.thread.start()

    def finish(self):
        """Prints what is left once the job rests, then stops."""
        self.stop.set()
        self.thread.join(10)

    def _open(self):
        try:
            path = self.client.get_job(self.job_id).get("logFile")
        except BlenderJobsError:
            return None
        for candidate in (path, path and path[:-len(".part")] if path and path.endswith(".part") else None):
            if candidate:
                try:
                    return open(candidate, "rb")
                except OSError:
                    pass
        return None

    def _run(self):
        handle, pending = None, b""
        while True:
            stopping = self.stop.is_set()
            if handle is None:
                handle = self._open()
            if handle is not None:
                chunk = handle.read()
                if chunk:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        self.write(line.decode("utf-8", "replace"))
            if stopping:
                break
            self.stop.wait(0.1)
        if pending:
            self.write(pending.decode("utf-8", "replace"))
        if handle is not None:
            handle.close()


# --------------------------------------------------------------------------- commands

def _start_client(args, workers=None):
    workspace = args.workspace or os.getcwd()
    server = find_server(server=args.server, option="the --server option")
    client = BlenderJobsClient(server=server, workers=args.workers or workers, blender=args.blender,
                               state_dir=os.path.abspath(args.state_dir) if args.state_dir else None,
                               workspace=workspace,
                               stderr_echo=sys.stderr if args.server_log else None)
    try:
        info = client.initialize()
    except BaseException:
        client.close(timeout=2, kill_after=2)
        raise
    if info.get("stateDirTemporary"):
        note("note: this server's jobs are not kept after it stops (%s)" % (
            info.get("stateDirNote") or "it has a temporary state directory"))
    return client


def _resolve_job(client, ref):
    """A job id, `last` (the most recent job), or a unique part of an id."""
    jobs = client.list_jobs()["jobs"]
    if ref == "last":
        if not jobs:
            raise UsageError("there are no jobs in this folder's workspace yet")
        return max(jobs, key=lambda j: (j.get("createdAt") or 0, j["jobId"]))["jobId"]
    exact = [j["jobId"] for j in jobs if j["jobId"] == ref]
    if exact:
        return exact[0]
    matches = [j["jobId"] for j in jobs if ref in j["jobId"]]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError("no job %r in this workspace (`%s list` shows them)" % (ref, PROG))
    raise UsageError("%r matches %d jobs (%s); give more of the id" % (ref, len(matches), ", ".join(matches[:5])))


def _when(ms):
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000.0))


def _log_text(path):
    # The server makes the log file with the job's first output: a silent job has none.
    return path if path and os.path.exists(path) else "none (the job printed nothing)"


def _results(client, job_id):
    data_blocks = client.get_data_blocks(job_id)
    return {"pythonData": client.get_python_data(job_id),
            "dataBlocks": {"library": data_blocks.get("library"), "blocks": data_blocks.get("blocks") or {},
                           "count": data_blocks.get("count", 0)}}


def _print_results(out, results):
    text = json.dumps(results["pythonData"], ensure_ascii=False, sort_keys=True)
    out.line("python data: %s" % text)
    blocks = results["dataBlocks"]
    if blocks["count"]:
        out.line("data blocks: %s" % "; ".join("%s: %s" % (kind, ", ".join(names))
                                               for kind, names in sorted(blocks["blocks"].items())))
        out.line("library:     %s" % blocks["library"])
    else:
        out.line("data blocks: none")


def _print_error(out, error, log_tail=None):
    if not error:
        return
    out.line("error: %s: %s" % (error.get("kind"), error.get("message")))
    for key in ("traceback", "crashReport"):
        if error.get(key):
            out.line(error[key].rstrip())
    tail = [l for l in (log_tail if log_tail is not None else error.get("logTail") or []) if l.strip()]
    if tail:
        out.line("last log lines:")
        for line in tail[-15:]:
            out.line("  | " + line)


def _wait_and_report(client, args, out, job_ids, labels, follow=False):
    """Progress until every job rests, then each job's outcome. Returns the exit code."""
    progress = Progress(out, labels)
    client.on_progress(progress.on_progress)
    client.on_state_changed(progress.on_state)
    followers = []
    if follow:
        for job_id in job_ids:
            write = (lambda line: progress.above(line)) if not out.as_json else (lambda line: sys.stderr.write(line + "\n"))
            follower = LogFollower(client, job_id, write)
            follower.start()
            followers.append(follower)
    finals = {}
    for job_id in job_ids:
        finals[job_id] = client.wait_for_job(job_id)
    for follower in followers:
        follower.finish()
    if out.tty and progress.enabled:
        out.stream.write("\n")
    documents, code = [], EXIT_OK
    for job_id in job_ids:
        final = finals[job_id]
        job = client.get_job(job_id)
        doc = {"jobId": job_id, "name": job.get("name"), "state": final["state"], "elapsedMs": job.get("elapsedMs"),
               "attempt": job.get("attempt"), "logFile": job.get("logFile"), "directory": job.get("directory")}
        out.line("%s %s: %s%s" % (job_id, labels[job_id], final["state"],
                                  " after %.2f s" % (job["elapsedMs"] / 1000.0) if job.get("elapsedMs") else ""))
        if final["state"] == "COMPLETED":
            results = _results(client, job_id)
            doc.update(results)
            _print_results(out, results)
        else:
            code = EXIT_FAILED
            doc["error"] = job.get("error") or final.get("error")
            _print_error(out, doc["error"], job.get("logTail") if doc["error"] else None)
            if final["state"] == "INTERRUPTED":
                out.line("`%s resume %s` runs it again" % (PROG, job_id))
        out.line("log:         %s" % _log_text(job.get("logFile")))
        documents.append(doc)
    out.document(documents[0] if len(documents) == 1 and args.command == "run" else {"jobs": documents})
    return code


def cmd_run(args, out):
    script = os.path.abspath(args.script)
    if not os.path.isfile(script):
        raise UsageError("no such script: %s" % args.script)
    if args.blend and not os.path.isfile(args.blend):
        raise UsageError("--blend %s does not exist" % args.blend)
    passed_data = parse_data(args.data)
    blocks = parse_blocks(args.library, args.blocks)
    name = args.name or os.path.basename(script)
    client = _start_client(args, workers=1)
    try:
        job = client.add_job(script=script, name=name, passed_data=passed_data, passed_data_blocks=blocks,
                             blend_file=args.blend, timeout=args.timeout, max_attempts=args.attempts)
        return _wait_and_report(client, args, out, [job["jobId"]], {job["jobId"]: name}, follow=args.follow)
    finally:
        client.close()


def cmd_resume(args, out):
    client = _start_client(args)
    try:
        if args.jobs:
            job_ids = [_resolve_job(client, ref) for ref in args.jobs]
            for job_id in job_ids:
                client.resume_job(job_id)
        else:
            job_ids = client.resume_all().get("jobIds") or []
        if not job_ids:
            out.line("no interrupted jobs")
            out.document({"jobs": []})
            return EXIT_OK
        labels = dict((j["jobId"], j.get("name") or j["jobId"]) for j in client.list_jobs()["jobs"]
                      if j["jobId"] in job_ids)
        return _wait_and_report(client, args, out, job_ids, labels, follow=args.follow)
    finally:
        client.close()


def cmd_list(args, out):
    client = _start_client(args)
    try:
        listing = client.list_jobs(states=args.state) if args.state else client.list_jobs()
        jobs = sorted(listing["jobs"], key=lambda j: (j.get("createdAt") or 0, j["jobId"]))
        out.document({"jobs": jobs, "count": len(jobs), "stateDir": client.state_dir})
        if not jobs:
            out.line("no jobs (state directory %s)" % client.state_dir)
        else:
            out.line("%-16s %-11s %5s  %-19s  %s" % ("JOB", "STATE", "DONE", "CREATED", "NAME"))
            for job in jobs:
                state = job["state"] + ("*" if job.get("errorKind") and job["state"] != "INTERRUPTED" else "")
                out.line("%-16s %-11s %4d%%  %-19s  %s" % (job["jobId"], state, int(job.get("progress", 0) * 100),
                                                          _when(job.get("createdAt")), job.get("name") or ""))
        return EXIT_OK
    finally:
        client.close()


def cmd_show(args, out):
    client = _start_client(args)
    try:
        job = client.get_job(_resolve_job(client, args.job))
        log = None
        if args.log and job.get("logFile"):
            try:
                with open(job["logFile"], encoding="utf-8", errors="replace") as f:
                    log = f.read()
            except OSError as exc:
                log = "(the log %s cannot be read: %s)" % (job["logFile"], exc)
        document = dict(job, log=log) if log is not None else job
        out.document(document)
        out.line("%s %s" % (job["jobId"], job.get("name") or ""))
        out.line("state:    %s (attempt %s of %s)%s" % (job["state"], job.get("attempt"), job.get("maxAttempts"),
                                                        ", %d%%" % (job.get("progress", 0) * 100)
                                                        if job["state"] not in FINAL_STATES else ""))
        out.line("script:   %s" % job.get("script"))
        out.line("created:  %s   finished: %s   elapsed: %.2f s" % (
            _when(job.get("createdAt")), _when(job.get("finishedAt")), (job.get("elapsedMs") or 0) / 1000.0))
        for earlier in job.get("earlierErrors") or []:
            out.line("attempt %s failed: %s: %s" % (earlier.get("attempt"), earlier.get("kind"), earlier.get("message")))
        _print_error(out, job.get("error"), [])
        if job.get("dataBlocks", {}).get("count"):
            out.line("library:  %s" % job["dataBlocks"]["library"])
        out.line("log:      %s" % _log_text(job.get("logFile")))
        if log is not None:
            out.line(log.rstrip("\n"))
        elif job.get("logTail"):
            out.line("last log lines (--log for all):")
            for line in job["logTail"][-20:]:
                out.line("  | " + line)
        return EXIT_OK
    finally:
        client.close()


def cmd_result(args, out):
    client = _start_client(args)
    try:
        job_id = _resolve_job(client, args.job)
        try:
            results = _results(client, job_id)
        except JsonRpcError as exc:
            note("%s has no results: %s" % (job_id, getattr(exc, "message", exc)))
            return EXIT_FAILED
        out.document(dict(results, jobId=job_id))
        _print_results(out, results)
        return EXIT_OK
    finally:
        client.close()


def cmd_cancel(args, out):
    if not args.jobs and not args.all:
        raise UsageError("give job ids or --all")
    client = _start_client(args)
    try:
        if args.all:
            count = client.cancel_all().get("canceled", 0)
            out.line("canceled %d job(s)" % count)
            out.document({"canceled": count})
            return EXIT_OK
        results = [client.cancel_job(_resolve_job(client, ref)) for ref in args.jobs]
        for result in results:
            out.line("%s: %s%s" % (result["jobId"], result["state"], "" if result.get("canceled") else " (already)"))
        out.document({"jobs": results})
        return EXIT_OK
    finally:
        client.close()


def cmd_remove(args, out):
    client = _start_client(args)
    try:
        removed = []
        for ref in args.jobs:
            job_id = _resolve_job(client, ref)
            client.remove_job(job_id)
            removed.append(job_id)
            out.line("removed %s" % job_id)
        out.document({"removed": removed})
        return EXIT_OK
    finally:
        client.close()


COMMANDS = {"run": cmd_run, "list": cmd_list, "show": cmd_show, "result": cmd_result, "cancel": cmd_cancel,
            "resume": cmd_resume, "remove": cmd_remove}


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    out = Output(args.json)
    try:
        return COMMANDS[args.command](args, out)
    except UsageError as exc:
        note(str(exc))
        return EXIT_USAGE
    except ServerNotFound as exc:
        note(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        note("interrupted; the server stopped, so unfinished jobs are INTERRUPTED (`%s resume` runs them again)"
             % PROG)
        return EXIT_INTERRUPTED
    except JsonRpcError as exc:
        note("the server refused: %s" % getattr(exc, "message", exc))
        return EXIT_FAILED
    except BlenderJobsError as exc:
        note(str(exc))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
