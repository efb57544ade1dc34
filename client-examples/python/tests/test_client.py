"""Tests of blender_jobs_client against the REAL server jar and the REAL Blender (no mocks).

    python3 -m unittest discover -s client-examples/python/tests -v

The jar is $BLENDER_JOBS_JAR or server/target/blender-jobs-server.jar; if it is missing every
test class errors with a message saying how to build it (nothing is skipped).
"""

import atexit
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.dirname(HERE)
PROJECT = os.path.normpath(os.path.join(CLIENT_DIR, "..", ".."))
FIXTURES = os.path.join(PROJECT, "test-fixtures")
sys.path.insert(0, CLIENT_DIR)

from blender_jobs_client import (  # noqa: E402
    FAILURE_KINDS, FINAL_STATES, JOB_STATES, RESTING_STATES, BlenderJobsClient, InvalidParams, JobFailed,
    JobInterrupted, JobNotFound, JobNotResumable, JobWaitTimeout, JsonRpcError, RequestTimeout, ServerExited,
    default_jar_path, workspace_uri)

JOB_WAIT = 120  # seconds; generous for slow CI machines (a worker Blender starts in ~1-2 s)


_JAR_SNAPSHOT = []


def require_jar():
    """The jar the tests run: a private copy of $BLENDER_JOBS_JAR (or the default build output),
    taken once, so that a concurrent `mvn package` cannot replace the jar under running servers."""
    if _JAR_SNAPSHOT:
        return _JAR_SNAPSHOT[0]
    jar = default_jar_path()
    if not os.path.isfile(jar):
        raise AssertionError(
            "blender-jobs server jar not found at %s. Build it first (cd %s && mvn -q package -DskipTests) "
            "or set BLENDER_JOBS_JAR to its path." % (jar, PROJECT))
    directory = tempfile.mkdtemp(prefix="blender-jobs-client-tests-")
    atexit.register(shutil.rmtree, directory, True)
    copy = os.path.join(directory, os.path.basename(jar))
    shutil.copyfile(jar, copy)
    _JAR_SNAPSHOT.append(copy)
    return copy


def require_fixture(*parts):
    path = os.path.join(FIXTURES, *parts)
    if not os.path.isfile(path):
        raise AssertionError("test fixture missing: %s" % path)
    return path


def start_client(**kwargs):
    kwargs.setdefault("workers", 1)
    return BlenderJobsClient(require_jar(), **kwargs)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); count it as gone.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def all_threads_stopped(pid):
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, task)) as f:
                if f.read().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
                    return False
        except OSError:  # the thread ended meanwhile
            pass
    return True


def stop_process(pid):
    """SIGSTOP, then wait until the kernel reports the process stopped (delivery is asynchronous:
    without this a request sent right away may still be answered)."""
    os.kill(pid, signal.SIGSTOP)
    if os.path.exists("/proc/%d/stat" % pid):
        if not wait_until(lambda: all_threads_stopped(pid), 5, 0.01):
            raise AssertionError("process %d did not stop after SIGSTOP" % pid)
    else:
        time.sleep(0.5)


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def wait_for_state(test, client, job_id, state, timeout=JOB_WAIT):
    """Polls until the job is in ``state``; fails with the server's view if it never gets there."""
    if wait_until(lambda: client.get_progress(job_id)["state"] == state, timeout, 0.1):
        return
    test.fail("job %s did not reach %s within %s s; job: %r; stats: %r; server log tail:\n%s" % (
        job_id, state, timeout, client.get_progress(job_id), client.get_stats(),
        "\n".join(client.stderr_tail(30))))


class SharedServerTests(unittest.TestCase):
    """Tests that can share one server (2 workers)."""

    client = None

    @classmethod
    def setUpClass(cls):
        cls.client = start_client(workers=2)
        try:
            cls.init = cls.client.initialize()
        except BaseException:
            cls.client.close()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.client is not None:
            cls.client.close()

    def run_job(self, **kwargs):
        job = self.client.add_job(**kwargs)
        final = self.client.wait_for_job(job["jobId"], JOB_WAIT)
        return job, final

    # -------------------------------------------------------------- initialize

    def test_initialize_answers(self):
        init = self.init
        self.assertEqual(init["serverInfo"]["name"], "blender-jobs")
        self.assertTrue(init["serverInfo"]["version"])
        self.assertTrue(init["blender"]["available"], "server found no Blender: %r" % (init["blender"],))
        self.assertTrue(init["blender"]["version"])
        self.assertEqual(init["workers"], 2)
        caps = init["capabilities"]
        for method in ("addJob", "getProgress", "getPythonData", "getDataBlocks", "getJob", "listJobs",
                       "cancelJob", "cancelAll", "resumeJob", "resumeAll", "removeJob", "getStats", "shutdown"):
            self.assertIn(method, caps["requests"])
        self.assertEqual(set(caps["notifications"]), {"job/progress", "job/stateChanged", "job/removed", "job/log", "$/progress",
                                                      "window/showMessage", "textDocument/publishDiagnostics"})
        self.assertIn("followLog", caps["requests"])
        self.assertIn("unfollowLog", caps["requests"])
        # The client's constants are exactly what the server announces.
        self.assertEqual(sorted(caps["jobStates"]), sorted(JOB_STATES))
        self.assertEqual(sorted(caps["failureKinds"]), sorted(FAILURE_KINDS))
        self.assertEqual(RESTING_STATES, FINAL_STATES | {"INTERRUPTED"})
        self.assertGreater(caps["maxMessageBytes"], 1024)
        # No workspace and no --state-dir: a temporary state directory, nothing recovered.
        self.assertTrue(init["stateDirTemporary"])
        self.assertTrue(self.client.state_dir_temporary)
        self.assertEqual(self.client.state_dir, init["stateDir"])
        self.assertTrue(os.path.isdir(self.client.state_dir))
        self.assertEqual(self.client.recovered_jobs, {"jobs": 0, "interrupted": 0, "resumed": 0, "pruned": 0, "unreadable": 0})

    # -------------------------------------------------------------- jobs

    def test_script_text_job_completes_with_python_data(self):
        job, final = self.run_job(script_text="python_data = {'answer': 6 * 7, 'items': [1, 2.5, 'three', None]}",
                                  name="answer")
        # protocol: addJob answers state "QUEUED"; the server currently may already say ACTIVE
        # when a worker was idle (reported), so accept both.
        self.assertIn(job["state"], ("QUEUED", "ACTIVE"))
        self.assertEqual(job["name"], "answer")
        self.assertEqual(final["state"], "COMPLETED", final)
        self.assertEqual(final["jobId"], job["jobId"])
        self.assertEqual(self.client.get_python_data(job["jobId"]),
                         {"answer": 42, "items": [1, 2.5, "three", None]})
        progress = self.client.get_progress(job["jobId"])
        self.assertEqual(progress["state"], "COMPLETED")
        self.assertIn("elapsedMs", progress)

    def test_passed_data_keys_become_globals(self):
        job, final = self.run_job(script_text="python_data = {'sum': x + y, 'label': label}",
                                  passed_data={"x": 2, "y": 40, "label": "héllo ✓"})
        self.assertEqual(final["state"], "COMPLETED", final)
        self.assertEqual(self.client.get_python_data(job["jobId"]), {"sum": 42, "label": "héllo ✓"})

    def test_progress_notifications_arrive_in_order_before_completed(self):
        events = []
        lock = threading.Lock()
        job_ids = set()

        def on_progress(params):
            with lock:
                events.append(("progress", params))

        def on_state(params):
            with lock:
                events.append(("state", params))

        self.client.on_progress(on_progress)
        self.client.on_state_changed(on_state)
        try:
            script = ("import time\n"
                      "for i in range(1, 21):\n"
                      "    time.sleep(0.05)\n"
                      "    update_job_progress(i / 20.0, 'step %d' % i)\n"
                      "python_data = 'done'\n")
            job = self.client.add_job(script_text=script)
            job_ids.add(job["jobId"])
            final = self.client.wait_for_job(job["jobId"], JOB_WAIT)
        finally:
            self.client.remove_notification_handler("job/progress", on_progress)
            self.client.remove_notification_handler("job/stateChanged", on_state)
        self.assertEqual(final["state"], "COMPLETED", final)
        with lock:
            mine = [(kind, p) for kind, p in events if p.get("jobId") == job["jobId"]]
        completed_at = [i for i, (kind, p) in enumerate(mine) if kind == "state" and p["state"] == "COMPLETED"]
        self.assertEqual(len(completed_at), 1, mine)
        progress = [p for kind, p in mine if kind == "progress"]
        self.assertGreaterEqual(len(progress), 2, "expected several job/progress notifications: %r" % mine)
        # Every progress notification came before the COMPLETED state change ...
        self.assertTrue(all(kind == "state" or i < completed_at[0] for i, (kind, _) in enumerate(mine)), mine)
        # ... in non-decreasing order, and the last value (1.0) arrived.
        values = [p["progress"] for p in progress]
        self.assertEqual(values, sorted(values), values)
        self.assertEqual(values[-1], 1.0)
        stamps = [p["reportedAt"] for p in progress]
        self.assertEqual(stamps, sorted(stamps), stamps)
        # The state sequence is QUEUED -> ACTIVE -> COMPLETED.
        states = [p["state"] for kind, p in mine if kind == "state"]
        self.assertEqual(states[-2:], ["ACTIVE", "COMPLETED"], states)

    def test_follow_log_and_on_log_stream_the_console_until_the_job_rests(self):
        events = []
        lock = threading.Lock()

        def on_log(params):
            with lock:
                events.append(("log", params))

        def on_state(params):
            with lock:
                events.append(("state", params))

        self.client.on_log(on_log)
        self.client.on_state_changed(on_state)
        try:
            script = ("import os, time\n"
                      "print('first')\n"
                      "for i in range(4):\n"
                      "    update_job_progress((i + 1) / 4.0)\n"
                      "    time.sleep(0.3)\n"
                      "    print('tick %d \u00e9' % i)\n"
                      "os.write(1, b'raw \\xff\\n')\n")
            job = self.client.add_job(script_text=script)
            deadline = time.time() + JOB_WAIT
            while self.client.get_progress(job["jobId"])["state"] != "ACTIVE" and time.time() < deadline:
                time.sleep(0.05)
            followed = self.client.follow_log(job["jobId"])
            final = self.client.wait_for_job(job["jobId"], JOB_WAIT)
        finally:
            self.client.remove_notification_handler("job/log", on_log)
            self.client.remove_notification_handler("job/stateChanged", on_state)
        self.assertEqual(final["state"], "COMPLETED", final)
        self.assertEqual(followed["jobId"], job["jobId"])
        self.assertTrue(followed["following"], followed)
        with lock:
            mine = [(kind, p) for kind, p in events if p.get("jobId") == job["jobId"]]
        texts = [p["text"] for kind, p in mine if kind == "log"]
        self.assertTrue(texts, "job/log notifications came: %r" % mine)
        whole = followed["text"] + "".join(texts)
        with open(self.client.get_job(job["jobId"])["logFile"], "rb") as f:
            self.assertEqual(whole, f.read().decode("utf-8", "replace"), "follow_log text + job/log = the log")
        self.assertTrue(whole.startswith("first\n") and whole.endswith("tick 3 \u00e9\nraw \ufffd\n"), whole)
        completed = [i for i, (kind, p) in enumerate(mine) if kind == "state" and p["state"] == "COMPLETED"][0]
        self.assertTrue(all(i < completed for i, (kind, _) in enumerate(mine) if kind == "log"), mine)
        # A resting job: its whole log, and nothing follows.
        self.assertEqual(self.client.follow_log(job["jobId"]),
                         {"jobId": job["jobId"], "text": whole, "following": False})
        self.assertEqual(self.client.unfollow_log(job["jobId"]), {"jobId": job["jobId"], "following": False})
        with self.assertRaises(JobNotFound):
            self.client.follow_log("job-000000000000")

    def test_failing_script_reports_script_error(self):
        job, final = self.run_job(script=require_fixture("jobs", "raises.py"))
        self.assertEqual(final["state"], "FAILED", final)
        self.assertEqual(final["error"]["kind"], "SCRIPT_ERROR")
        self.assertIn("fixture failure: expected", final["error"]["message"])
        with self.assertRaises(JobFailed) as caught:
            self.client.get_python_data(job["jobId"])
        self.assertEqual(caught.exception.code, 1003)
        self.assertEqual(caught.exception.failure_kind, "SCRIPT_ERROR")
        detail = self.client.get_job(job["jobId"])
        self.assertIn("inner", detail["error"].get("traceback", ""))

    def test_server_messages_report_unsaved_job_states_and_their_recovery(self):
        messages = []
        saved_again = threading.Event()

        def on_message(params):
            messages.append(params)
            if params.get("kind") == "RECORDS_SAVED_AGAIN":
                saved_again.set()

        self.client.on_server_message(on_message)
        try:
            job, final = self.run_job(script=require_fixture("jobs", "unsaved_record.py"))
            self.assertEqual(final["state"], "COMPLETED", final)
            self.assertEqual(self.client.get_python_data(job["jobId"]), {"still": "served"})
            self.assertTrue(saved_again.wait(JOB_WAIT), messages)
            self.assertEqual(messages[0]["kind"], "RECORDS_NOT_SAVED", messages)
            self.assertEqual(messages[0]["type"], 2)
            self.assertIn(job["jobId"], messages[0]["message"])
            self.assertIn("No space left on device", messages[0]["message"])
            self.assertEqual(messages[-1]["type"], 3)
        finally:
            self.client.remove_notification_handler("window/showMessage", on_message)

    def test_job_timeout_fails_with_timed_out(self):
        job, final = self.run_job(script_text="import time\ntime.sleep(30)\n", timeout=1)
        self.assertEqual(final["state"], "FAILED", final)
        self.assertEqual(final["error"]["kind"], "TIMED_OUT")

    def test_data_blocks_from_library(self):
        library = require_fixture("blend", "library.blend")
        job, final = self.run_job(script=require_fixture("jobs", "remesh.py"), passed_data={"duration": 0.1},
                                  passed_data_blocks={"library": library, "names": {"objects": ["Cube"]}})
        self.assertEqual(final["state"], "COMPLETED", final)
        data = self.client.get_python_data(job["jobId"])
        self.assertEqual(data["name"], "Cube_remeshed")
        blocks = self.client.get_data_blocks(job["jobId"])
        self.assertIn("Cube_remeshed", blocks["blocks"]["objects"])
        self.assertTrue(blocks["library"] and os.path.isfile(blocks["library"]), blocks)

    def test_cancel_list_and_remove(self):
        job = self.client.add_job(script_text="import time\ntime.sleep(60)\n", name="to-cancel")
        canceled = self.client.cancel_job(job["jobId"])
        self.assertEqual(canceled["jobId"], job["jobId"])
        final = self.client.wait_for_job(job["jobId"], JOB_WAIT)
        self.assertEqual(final["state"], "CANCELED", final)
        listed = self.client.list_jobs(state="CANCELED", name="to-cancel")
        self.assertIn(job["jobId"], [j["jobId"] for j in listed["jobs"]])
        self.assertEqual(listed["count"], len(listed["jobs"]))
        removed = threading.Event()
        reasons = []

        def on_removed(params):
            if params["jobId"] == job["jobId"]:
                reasons.append(params["reason"])
                removed.set()

        self.client.on_job_removed(on_removed)
        try:
            self.assertEqual(self.client.remove_job(job["jobId"]), {"jobId": job["jobId"], "removed": True})
            self.assertTrue(removed.wait(JOB_WAIT), "job/removed never arrived")
        finally:
            self.client.remove_notification_handler("job/removed", on_removed)
        self.assertEqual(reasons, ["REMOVED"])
        with self.assertRaises(JobNotFound):
            self.client.get_progress(job["jobId"])
        # The client forgot its CANCELED state with the job: a wait says it is unknown.
        with self.assertRaises(JobNotFound):
            self.client.wait_for_job(job["jobId"], JOB_WAIT)

    def test_wait_for_job_that_finished_before_the_wait(self):
        job, final = self.run_job(script_text="python_data = 1")
        self.assertEqual(final["state"], "COMPLETED")
        # Forget the notification this client saw, so that wait_for_job must ask the server.
        with self.client._lock:
            self.client._finals.pop(job["jobId"], None)
        again = self.client.wait_for_job(job["jobId"], 10)
        self.assertEqual(again["state"], "COMPLETED")
        self.assertEqual(again["jobId"], job["jobId"])

    def test_wait_for_job_times_out(self):
        job = self.client.add_job(script_text="import time\ntime.sleep(60)\n")
        try:
            started = time.monotonic()
            with self.assertRaises(JobWaitTimeout):
                self.client.wait_for_job(job["jobId"], 0.5)
            self.assertLess(time.monotonic() - started, 5)
        finally:
            self.client.cancel_job(job["jobId"])
        self.assertEqual(self.client.wait_for_job(job["jobId"], JOB_WAIT)["state"], "CANCELED")

    def test_get_stats(self):
        stats = self.client.get_stats()
        self.assertEqual(stats["workers"], 2)
        for key in ("queued", "active", "completed", "failed", "canceled", "interrupted", "total", "freeWorkers",
                    "busyWorkers"):
            self.assertIsInstance(stats[key], int, key)

    # -------------------------------------------------------------- errors

    def test_unknown_job_raises_job_not_found(self):
        for call in (self.client.get_progress, self.client.get_python_data, self.client.get_job,
                     self.client.cancel_job, self.client.wait_for_job):
            with self.assertRaises(JobNotFound) as caught:
                call("job-does-not-exist")
            error = caught.exception
            self.assertIsInstance(error, JsonRpcError)
            self.assertEqual(error.code, 1001)
            self.assertEqual(error.error_kind, "JOB_NOT_FOUND")
            self.assertIn("job-does-not-exist", error.message)

    def test_bad_params_raise_invalid_params_naming_the_field(self):
        cases = [
            (dict(), "script"),                                               # neither script nor scriptText
            (dict(script_text="x = 1", script="/nonexistent/job.py"), "script"),  # both
            (dict(script="/nonexistent/job.py"), "script"),                    # missing file
            (dict(script_text="x = 1", timeout="soon"), "timeout"),
            (dict(script_text="x = 1", timeout=-1), "timeout"),
            (dict(script_text="x = 1", max_attempts=0), "maxAttempts"),
            (dict(script_text="x = 1", isolation="container"), "isolation"),
            (dict(script_text="x = 1", passed_data=[1, 2]), "passedData"),
            (dict(script_text="x = 1", passed_data={"python_data": 1}), "passedData"),
            (dict(script_text="x = 1", replace_existing=True), "replaceExisting"),
            (dict(script_text="x = 1", colour="red"), "colour"),               # unknown parameter
        ]
        for kwargs, field in cases:
            with self.assertRaises(InvalidParams, msg=repr(kwargs)) as caught:
                self.client.add_job(**kwargs)
            error = caught.exception
            self.assertEqual(error.code, -32602)
            self.assertEqual(error.field, field, "%r -> %r" % (kwargs, error.data))
            self.assertTrue(error.reason)
        with self.assertRaises(InvalidParams) as caught:
            self.client.list_jobs(state="DONE")
        self.assertEqual(caught.exception.field, "state")


class ProcessLifecycleTests(unittest.TestCase):
    """Tests that stop, kill or close their own server."""

    def setUp(self):
        require_jar()

    def test_request_timeout_then_late_response_is_dropped(self):
        client = start_client()
        try:
            client.initialize()
            stop_process(client.pid)
            try:
                started = time.monotonic()
                with self.assertRaises(RequestTimeout) as caught:
                    client.get_stats(timeout=0.5)
                elapsed = time.monotonic() - started
                self.assertGreaterEqual(elapsed, 0.45)
                self.assertLess(elapsed, 3)
                self.assertEqual(caught.exception.method, "getStats")
                self.assertIsInstance(caught.exception, TimeoutError)
            finally:
                os.kill(client.pid, signal.SIGCONT)
            # The late answer to getStats is dropped; the next request gets its own answer.
            job = client.add_job(script_text="python_data = 'after the stall'")
            self.assertEqual(client.wait_for_job(job["jobId"], JOB_WAIT)["state"], "COMPLETED")
            self.assertEqual(client.get_python_data(job["jobId"]), "after the stall")
        finally:
            self.assertEqual(client.close(), 0)

    def test_server_killed_pending_requests_raise_server_exited(self):
        client = start_client()
        try:
            client.initialize()
            job = client.add_job(script_text="import time\nupdate_job_progress(0.5)\ntime.sleep(60)\n")
            wait_for_state(self, client, job["jobId"], "ACTIVE")
            outcomes = {}

            def run(key, call):
                started = time.monotonic()
                try:
                    outcomes[key] = call()
                except BaseException as exc:  # noqa: B902 - recorded for the assertions
                    outcomes[key] = exc
                outcomes[key + "_seconds"] = time.monotonic() - started

            waiter = threading.Thread(target=run, args=("wait", lambda: client.wait_for_job(job["jobId"], 60)))
            waiter.start()
            stop_process(client.pid)  # so that the next request stays unanswered
            requester = threading.Thread(target=run, args=("request", lambda: client.get_stats(timeout=60)))
            requester.start()
            time.sleep(0.5)
            killed_at = time.monotonic()
            os.kill(client.pid, signal.SIGKILL)
            waiter.join(10)
            requester.join(10)
            self.assertFalse(waiter.is_alive() or requester.is_alive(), "a call still hangs after the kill")
            self.assertLess(time.monotonic() - killed_at, 5, "ServerExited was not prompt")
            self.assertIsInstance(outcomes["request"], ServerExited, outcomes)
            self.assertIsInstance(outcomes["wait"], ServerExited, outcomes)
            self.assertEqual(outcomes["request"].returncode, -signal.SIGKILL)
            # Later calls fail at once too.
            started = time.monotonic()
            with self.assertRaises(ServerExited):
                client.get_stats(timeout=30)
            with self.assertRaises(ServerExited):
                client.add_job(script_text="x = 1")
            self.assertLess(time.monotonic() - started, 1)
            self.assertFalse(client.is_alive())
        finally:
            client.close(timeout=2, kill_after=2)

    def test_context_manager_initializes_and_closes_the_server(self):
        with start_client() as client:
            self.assertIsNotNone(client.server_info, "initialize was not called on enter")
            job = client.add_job(script_text="python_data = 'ok'")
            self.assertEqual(client.wait_for_job(job["jobId"], JOB_WAIT)["state"], "COMPLETED")
            worker_pids = [w["pid"] for w in client.get_stats()["workerDetails"] if w.get("pid")]
            self.assertTrue(client.is_alive())
        self.assertEqual(client.process.returncode, 0, "\n".join(client.stderr_tail()))
        self.assertFalse(client.is_alive())
        with self.assertRaises(ServerExited):
            client.get_stats()
        self.assertTrue(worker_pids)
        for pid in worker_pids:
            self.assertTrue(wait_until(lambda: not pid_alive(pid), 10), "worker Blender %d outlived the server" % pid)

    def test_close_interrupts_running_jobs(self):
        client = start_client()
        client.initialize()
        states = []
        client.on_state_changed(lambda p: states.append((p["jobId"], p["state"])))
        job = client.add_job(script_text="import time\ntime.sleep(60)\n")
        wait_for_state(self, client, job["jobId"], "ACTIVE")
        started = time.monotonic()
        self.assertEqual(client.close(), 0)
        self.assertLess(time.monotonic() - started, 15)
        # shutdown made the running job INTERRUPTED (not CANCELED), and the client heard of it.
        self.assertEqual(states[-1], (job["jobId"], "INTERRUPTED"), states)
        self.assertEqual(client.wait_for_job(job["jobId"], 1)["state"], "INTERRUPTED")

    def test_stderr_is_drained(self):
        # A server that logs a lot must not block on a full stderr pipe.
        with start_client(log_level="ALL") as client:
            for _ in range(3):
                job = client.add_job(script_text="print('x' * 100)\npython_data = 1")
                self.assertEqual(client.wait_for_job(job["jobId"], JOB_WAIT)["state"], "COMPLETED")
            self.assertIsInstance(client.stderr_tail(), list)

    def test_workspace_uri(self):
        self.assertEqual(workspace_uri("/home/me/my project"), "file:///home/me/my%20project")
        self.assertEqual(workspace_uri("file:///home/me/project"), "file:///home/me/project")
        self.assertEqual(workspace_uri("vscode-remote://ssh-remote+box/src"), "vscode-remote://ssh-remote+box/src")
        self.assertEqual(workspace_uri("rel"), pathlib.Path(os.path.abspath("rel")).as_uri())

    def test_missing_jar_is_a_clear_error(self):
        with self.assertRaises(FileNotFoundError) as caught:
            BlenderJobsClient("/nonexistent/blender-jobs-server.jar")
        self.assertIn("mvn", str(caught.exception))


# A script that runs long the first time and finishes at once when run again: the first attempt
# creates the marker file (passedData "marker") and sleeps; a resumed run finds it and returns.
MARKER_SCRIPT = """import os, time
if os.path.exists(marker):
    python_data = {"resumed": True, "marker": marker}
else:
    open(marker, "w").close()
    update_job_progress(0.1, "first run: sleeping")
    time.sleep(60)
"""


class DurabilityTests(unittest.TestCase):
    """Jobs outlive the server: shutdown leaves unfinished jobs INTERRUPTED in a persistent state
    directory, and a later server on the same directory lists them and resumes them."""

    def setUp(self):
        require_jar()
        self.tmp = tempfile.mkdtemp(prefix="blender-jobs-durability-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.clients = []

    def tearDown(self):
        for client in self.clients:
            client.close(timeout=5, kill_after=5)

    def start(self, **kwargs):
        client = start_client(**kwargs)
        self.clients.append(client)
        return client

    def add_interrupted_jobs(self, **server):
        """Server A: a running job (the marker script) and a queued one, then close() (shutdown).
        Returns (running job, queued job, marker path, state changes the client saw)."""
        marker = os.path.join(self.tmp, "marker")
        client = self.start(**server)
        client.initialize()
        states = []
        client.on_state_changed(lambda p: states.append(p))
        progressed = threading.Event()
        client.on_progress(lambda p: progressed.set())
        running = client.add_job(script_text=MARKER_SCRIPT, name="long", passed_data={"marker": marker})
        queued = client.add_job(script_text="python_data = {'queued': True}", name="waiting")
        self.assertTrue(progressed.wait(JOB_WAIT), "the first job never reported progress")
        self.assertTrue(os.path.exists(marker))
        # A wait that is under way when the server shuts down returns INTERRUPTED (it never hangs).
        outcome = {}
        waiter = threading.Thread(target=lambda: outcome.update(final=client.wait_for_job(running["jobId"], 30)))
        waiter.start()
        deadline = time.monotonic() + 10
        while running["jobId"] not in client._waiters and time.monotonic() < deadline:
            time.sleep(0.01)  # the wait is under way once its waiter is registered
        self.assertEqual(client.close(), 0, "\n".join(client.stderr_tail(20)))
        waiter.join(10)
        self.assertFalse(waiter.is_alive(), "wait_for_job hangs after shutdown")
        final = outcome["final"]
        self.assertEqual(final["state"], "INTERRUPTED", final)
        self.assertEqual(final["previousState"], "ACTIVE")
        self.assertEqual(final["error"]["kind"], "INTERRUPTED")
        interrupted = dict((p["jobId"], p) for p in states if p["state"] == "INTERRUPTED")
        self.assertEqual(set(interrupted), {running["jobId"], queued["jobId"]}, states)
        self.assertEqual(interrupted[queued["jobId"]]["previousState"], "QUEUED")
        self.assertFalse(any(p["state"] == "CANCELED" for p in states), states)
        return running, queued, marker

    def test_shutdown_interrupts_and_a_new_server_resumes(self):
        state_dir = os.path.join(self.tmp, "state")
        running, queued, marker = self.add_interrupted_jobs(state_dir=state_dir)

        client = self.start(state_dir=state_dir)
        init = client.initialize()
        self.assertEqual(os.path.realpath(init["stateDir"]), os.path.realpath(state_dir))
        self.assertFalse(client.state_dir_temporary)
        self.assertIsNone(client.state_dir_note)
        self.assertEqual(client.recovered_jobs, {"jobs": 2, "interrupted": 2, "resumed": 0, "pruned": 0, "unreadable": 0})
        listed = client.list_jobs(state="INTERRUPTED")
        self.assertEqual([j["jobId"] for j in listed["jobs"]], [running["jobId"], queued["jobId"]])
        self.assertEqual([j["errorKind"] for j in listed["jobs"]], ["INTERRUPTED", "INTERRUPTED"])
        self.assertEqual(client.get_stats()["interrupted"], 2)
        with self.assertRaises(JobInterrupted) as caught:
            client.get_python_data(running["jobId"])
        self.assertEqual(caught.exception.code, 1006)
        self.assertEqual(caught.exception.error_kind, "JOB_INTERRUPTED")
        self.assertEqual(caught.exception.failure_kind, "INTERRUPTED")
        # Waiting on a job that came to rest under the earlier server answers at once.
        started = time.monotonic()
        rested = client.wait_for_job(running["jobId"], 10)
        self.assertEqual(rested["state"], "INTERRUPTED")
        self.assertEqual(rested["error"]["kind"], "INTERRUPTED")
        self.assertLess(time.monotonic() - started, 1.5)

        resumed = client.resume_job(running["jobId"])
        self.assertEqual(resumed["jobId"], running["jobId"])
        self.assertEqual(resumed["previousState"], "INTERRUPTED")
        self.assertIn(resumed["state"], ("QUEUED", "ACTIVE"))
        final = client.wait_for_job(running["jobId"], JOB_WAIT)  # the resumed run, not the old rest
        self.assertEqual(final["state"], "COMPLETED", final)
        self.assertEqual(client.get_python_data(running["jobId"]), {"resumed": True, "marker": marker})
        self.assertEqual([e["kind"] for e in client.get_job(running["jobId"])["earlierErrors"]], ["INTERRUPTED"])
        with self.assertRaises(JobNotResumable) as caught:
            client.resume_job(running["jobId"])
        self.assertEqual(caught.exception.code, 1007)
        self.assertEqual(caught.exception.data["state"], "COMPLETED")

        self.assertEqual(client.resume_all(), {"resumed": 1, "jobIds": [queued["jobId"]]})
        self.assertEqual(client.wait_for_job(queued["jobId"], JOB_WAIT)["state"], "COMPLETED")
        self.assertEqual(client.get_python_data(queued["jobId"]), {"queued": True})
        self.assertEqual(client.get_stats()["interrupted"], 0)

    def test_workspace_keeps_jobs_and_resume_flag_restarts_them(self):
        env = dict(os.environ, XDG_DATA_HOME=os.path.join(self.tmp, "data"))
        workspace = os.path.join(self.tmp, "project")
        os.mkdir(workspace)
        workspaces = os.path.join(self.tmp, "data", "blender-jobs", "workspaces")

        first = self.start(workspace=workspace, env=env)
        first.initialize()
        self.assertFalse(first.state_dir_temporary)
        self.assertEqual(os.path.dirname(first.state_dir), workspaces)
        # A second server on the same workspace (a second editor window) gets a temporary directory.
        second = self.start(workspace=workspace, env=env)
        second.initialize()
        self.assertTrue(second.state_dir_temporary)
        self.assertNotEqual(second.state_dir, first.state_dir)
        self.assertIn(first.state_dir, second.state_dir_note or "")
        self.assertEqual(second.close(), 0)
        first.close()

        running, queued, _ = self.add_interrupted_jobs(workspace=workspace, env=env)
        client = self.start(workspace=workspace, env=env, resume=True)
        client.initialize()
        self.assertEqual(client.state_dir, first.state_dir)
        self.assertEqual(client.recovered_jobs, {"jobs": 2, "interrupted": 2, "resumed": 2, "pruned": 0, "unreadable": 0})
        finals = client.wait_for_jobs([running["jobId"], queued["jobId"]], JOB_WAIT)
        self.assertEqual([finals[j]["state"] for j in (running["jobId"], queued["jobId"])], ["COMPLETED"] * 2, finals)
        self.assertTrue(client.get_python_data(running["jobId"])["resumed"])
        self.assertEqual(client.resume_all(), {"resumed": 0, "jobIds": []})


if __name__ == "__main__":
    unittest.main(verbosity=2)
