"""Tests of the server lookup (find_server), the lazy initialize and the `blender-jobs` command,
against the REAL server jar and REAL Blender (no mocks).

    python3 -m unittest discover -s client-examples/python/tests -v

The command runs as a child process (python3 blender_jobs_cli.py ...), as a user would run it,
with $BLENDER_JOBS_SERVER naming a private copy of the jar, a temporary current folder (its
workspace) and a temporary $XDG_DATA_HOME (where the server keeps the workspace's jobs).
"""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.dirname(HERE)
PROJECT = os.path.normpath(os.path.join(CLIENT_DIR, "..", ".."))
FIXTURES = os.path.join(PROJECT, "test-fixtures")
CLI = os.path.join(CLIENT_DIR, "blender_jobs_cli.py")
sys.path.insert(0, CLIENT_DIR)
sys.path.insert(0, HERE)

import blender_jobs_client  # noqa: E402
from blender_jobs_client import BlenderJobsClient, ServerLocation, ServerNotFound, find_server  # noqa: E402
from test_client import JOB_WAIT, require_jar  # noqa: E402


def make_executable(path, text="#!/bin/sh\nexit 0\n"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


class FindServerTests(unittest.TestCase):
    """The lookup order every client shares: option, $BLENDER_JOBS_SERVER, PATH, a checkout's
    build output (launcher, then jar); and the error naming that order."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="blender-jobs-find-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.bin = os.path.join(self.tmp, "bin")
        self.on_path = make_executable(os.path.join(self.bin, "blender-jobs-server"))
        self.checkout = os.path.join(self.tmp, "checkout")
        self.launcher = make_executable(os.path.join(self.checkout, "server", "target", "blender-jobs-server-9.9.9",
                                                     "bin", "blender-jobs-server"))
        self.jar = os.path.join(self.checkout, "server", "target", "blender-jobs-server.jar")
        open(self.jar, "w").close()

    def test_the_option_comes_first(self):
        env = {"BLENDER_JOBS_SERVER": self.on_path, "PATH": self.bin}
        location = find_server(server=[self.launcher, "--log-level", "FINE"], checkouts=[self.checkout], env=env)
        self.assertEqual(location.command, [self.launcher, "--log-level", "FINE"])
        self.assertIsNone(location.jar)
        self.assertEqual(find_server(jar=self.jar, env=env).jar, self.jar)
        self.assertEqual(find_server(server=self.jar, env=env).jar, self.jar, "a lone .jar runs with java")
        located = ServerLocation(command=["x"])
        self.assertIs(find_server(server=located, env=env), located)

    def test_environment_then_path_then_checkout_launcher_then_jar(self):
        env = {"BLENDER_JOBS_SERVER": "%s --workers 1" % self.launcher, "PATH": self.bin}
        location = find_server(checkouts=[self.checkout], env=env)
        self.assertEqual(location.command, [self.launcher, "--workers", "1"])
        self.assertIn("$BLENDER_JOBS_SERVER", location.source)
        # The older $BLENDER_JOBS_JAR still works (a jar run with java and the JVM flags).
        self.assertEqual(find_server(env={"BLENDER_JOBS_JAR": self.jar, "PATH": self.bin}).jar, self.jar)
        self.assertEqual(find_server(checkouts=[self.checkout], env={"PATH": self.bin}).command, [self.on_path])
        # Not on PATH: the checkouts' build output, launcher before jar (the caller's hint first).
        empty_path = {"PATH": os.path.join(self.tmp, "nothing")}
        location = find_server(checkouts=[self.checkout], env=empty_path)
        self.assertEqual(location.command, [self.launcher])
        self.assertIn(self.checkout, location.source)
        shutil.rmtree(os.path.dirname(os.path.dirname(self.launcher)))
        self.assertEqual(find_server(checkouts=[self.checkout], env=empty_path).jar, self.jar)

    def test_named_but_missing_is_an_error(self):
        with self.assertRaises(ServerNotFound) as caught:
            find_server(env={"BLENDER_JOBS_SERVER": os.path.join(self.tmp, "nope", "blender-jobs-server")})
        self.assertIn("$BLENDER_JOBS_SERVER", str(caught.exception))
        self.assertIn("does not exist", str(caught.exception))
        with self.assertRaises(FileNotFoundError) as caught:  # ServerNotFound is a FileNotFoundError
            find_server(jar=os.path.join(self.tmp, "nope.jar"), env={})
        self.assertIn("mvn", str(caught.exception))
        with self.assertRaises(ServerNotFound):
            find_server(server="no-such-command-blender-jobs", env={"PATH": self.bin})

    def test_nothing_found_names_the_order(self):
        """A copy of the module outside any checkout, run from a folder outside any checkout."""
        lonely = os.path.join(self.tmp, "lonely")
        os.makedirs(lonely)
        shutil.copy(os.path.join(CLIENT_DIR, "blender_jobs_client.py"), lonely)
        code = ("import blender_jobs_client as c\n"
                "try:\n    c.BlenderJobsClient()\n"
                "except c.ServerNotFound as e:\n    print(str(e))\n    print('TRIED', len(e.tried))\n")
        env = {"PATH": os.path.join(self.tmp, "nothing"), "PYTHONPATH": lonely, "HOME": self.tmp}
        out = subprocess.run([sys.executable, "-c", code], cwd=lonely, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True, timeout=60).stdout
        self.assertIn("No blender-jobs server found", out)
        positions = [out.find(s) for s in ("1. the server option", "2. $BLENDER_JOBS_SERVER: not set",
                                           "3. blender-jobs-server on PATH: not found",
                                           "4. the build output of a blender-jobs checkout")]
        self.assertTrue(all(p >= 0 for p in positions) and positions == sorted(positions), out)
        self.assertIn("TRIED 4", out)
        self.assertIn("mvn -q package", out)


class BuildBackendTests(unittest.TestCase):
    """The in-tree build backend pip uses (offline installs)."""

    def setUp(self):
        sys.path.insert(0, os.path.join(CLIENT_DIR, "build_backend"))
        self.addCleanup(sys.path.remove, os.path.join(CLIENT_DIR, "build_backend"))
        import blender_jobs_build
        self.backend = blender_jobs_build
        self.tmp = tempfile.mkdtemp(prefix="blender-jobs-build-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_wheel_holds_the_modules_metadata_and_command(self):
        import zipfile
        name = self.backend.build_wheel(self.tmp)
        self.assertEqual(name, "blender_jobs_client-%s-py3-none-any.whl" % blender_jobs_client.__version__)
        with zipfile.ZipFile(os.path.join(self.tmp, name)) as wheel:
            names = wheel.namelist()
            info = "blender_jobs_client-%s.dist-info/" % blender_jobs_client.__version__
            self.assertEqual(sorted(n for n in names if not n.startswith(info)),
                             ["blender_jobs_cli.py", "blender_jobs_client.py"])
            self.assertIn("blender-jobs = blender_jobs_cli:main", wheel.read(info + "entry_points.txt").decode())
            self.assertIn("Requires-Python: >=3.9", wheel.read(info + "METADATA").decode())
            self.assertEqual(len(wheel.read(info + "RECORD").decode().splitlines()), len(names))
        self.assertEqual(self.backend.get_requires_for_build_wheel(), [], "nothing to download")

    def test_fallback_toml_reader_agrees_with_tomllib(self):
        with open(os.path.join(CLIENT_DIR, "pyproject.toml"), encoding="utf-8") as f:
            text = f.read()
        parsed = self.backend._parse_toml_subset(text)
        self.assertEqual(parsed["project"]["scripts"], {"blender-jobs": "blender_jobs_cli:main"})
        self.assertEqual(parsed["build-system"]["backend-path"], ["build_backend"])
        try:
            import tomllib  # Python 3.11+; before that the fallback is what builds
        except ImportError:
            return
        self.assertEqual(parsed, tomllib.loads(text))


class LazyInitializeTests(unittest.TestCase):
    def test_add_job_without_with_or_initialize(self):
        client = BlenderJobsClient(server=require_jar(), workers=1)
        try:
            self.assertIsNone(client.server_info)
            job = client.add_job(script_text="python_data = 6 * 7")
            self.assertIsNotNone(client.server_info, "the first request initialized the server")
            self.assertEqual(client.wait_for_job(job["jobId"], JOB_WAIT)["state"], "COMPLETED")
            self.assertEqual(client.get_python_data(job["jobId"]), 42)
        finally:
            self.assertEqual(client.close(), 0)

    def test_launcher_command_gets_the_server_flags(self):
        """A launcher (here a stand-in sh script that execs java -jar) gets the flags appended
        and is started as the server."""
        tmp = tempfile.mkdtemp(prefix="blender-jobs-launcher-")
        self.addCleanup(shutil.rmtree, tmp, True)
        seen = os.path.join(tmp, "args")
        launcher = make_executable(os.path.join(tmp, "bin", "blender-jobs-server"),
                                   '#!/bin/sh\necho "$@" > "%s"\nexec java -jar "%s" "$@"\n' % (seen, require_jar()))
        with BlenderJobsClient(env=dict(os.environ, BLENDER_JOBS_SERVER=launcher), workers=1) as client:
            self.assertIsNone(client.jar)
            self.assertEqual(client.command[:3], [launcher, "--workers", "1"])
            self.assertEqual(client.server_info["workers"], 1)
        with open(seen) as f:
            self.assertEqual(f.read().split(), ["--workers", "1"])


class CliTests(unittest.TestCase):
    """The `blender-jobs` command, as a child process."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="blender-jobs-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.workspace = os.path.join(self.tmp, "project")
        os.makedirs(self.workspace)
        self.env = dict(os.environ, BLENDER_JOBS_SERVER=require_jar(), XDG_DATA_HOME=os.path.join(self.tmp, "data"))
        self.env.pop("BLENDER_JOBS_JAR", None)

    def cli(self, *args, **kwargs):
        expect = kwargs.pop("expect", 0)
        proc = subprocess.run([sys.executable, CLI] + list(args), cwd=self.workspace, env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              timeout=kwargs.pop("timeout", 180))
        if expect is not None:
            self.assertEqual(proc.returncode, expect, "blender-jobs %s\nstdout:\n%s\nstderr:\n%s" % (
                " ".join(args), proc.stdout, proc.stderr))
        return proc

    def write(self, name, text):
        path = os.path.join(self.workspace, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_run_keeps_results_for_later_invocations(self):
        self.write("data.json", json.dumps({"size": 2, "label": "it's \"quoted\""}))
        run = json.loads(self.cli("run", os.path.join(FIXTURES, "jobs", "echo.py"), "--data", "@data.json",
                                  "--json").stdout)
        self.assertEqual(run["state"], "COMPLETED")
        self.assertEqual(run["pythonData"]["passed"], {"size": 2, "label": "it's \"quoted\""})
        quad = json.loads(self.cli("run", os.path.join(FIXTURES, "jobs", "bmesh_quad.py"), "--json").stdout)
        self.assertEqual(quad["pythonData"], {"faces_before": 6, "faces_after": 7})
        library = quad["dataBlocks"]["library"]
        self.assertEqual(quad["dataBlocks"]["blocks"], {"objects": ["Cube_quad"]})
        # The server has stopped; the paths it printed stay valid (the workspace's state directory).
        self.assertTrue(os.path.isfile(library), library)
        self.assertTrue(library.startswith(os.path.join(self.tmp, "data", "blender-jobs", "workspaces")), library)

        listing = json.loads(self.cli("list", "--json").stdout)
        self.assertEqual([j["jobId"] for j in listing["jobs"]], [run["jobId"], quad["jobId"]])
        table = self.cli("list").stdout
        self.assertIn(quad["jobId"], table)
        self.assertIn("COMPLETED", table)
        result = json.loads(self.cli("result", "last", "--json").stdout)
        self.assertEqual((result["jobId"], result["pythonData"]), (quad["jobId"], quad["pythonData"]))
        self.assertIn('"size": 2', self.cli("result", run["jobId"][-6:]).stdout)  # a unique part of the id
        shown = self.cli("show", "last").stdout
        self.assertIn("state:    COMPLETED", shown)
        self.assertIn(library, shown)
        # Another folder is another workspace: none of these jobs there.
        other = os.path.join(self.tmp, "other")
        os.makedirs(other)
        self.assertEqual(json.loads(self.cli("list", "--json", "--workspace", other).stdout)["count"], 0)
        self.cli("remove", quad["jobId"])
        self.assertFalse(os.path.exists(library), "remove deletes the job's files")
        self.assertEqual(json.loads(self.cli("list", "--json").stdout)["count"], 1)

    def test_plain_progress_lines_when_stdout_is_not_a_terminal(self):
        out = self.cli("run", os.path.join(FIXTURES, "jobs", "remesh.py"), "--data", '{"duration": 0.3}',
                       "--library", os.path.join(FIXTURES, "blend", "library.blend"), "--blocks", "objects=Cube").stdout
        self.assertNotIn("\x1b[", out)
        lines = out.splitlines()
        self.assertIn("remesh.py   0% QUEUED", lines)
        self.assertTrue(any(l.startswith("remesh.py ") and "% ACTIVE" in l and "%" in l for l in lines), out)
        self.assertTrue(any(l.startswith("remesh.py 100% COMPLETED") for l in lines), out)
        self.assertRegex(out, r"job-[0-9a-f]{12} remesh\.py: COMPLETED after")
        self.assertIn("data blocks: objects: Cube_remeshed", out)

    def test_failed_job_prints_the_traceback_and_exits_1(self):
        proc = self.cli("run", os.path.join(FIXTURES, "jobs", "raises.py"), "--attempts", "2", expect=1)
        self.assertIn("error: SCRIPT_ERROR", proc.stdout)
        self.assertIn("Traceback (most recent call last)", proc.stdout)
        self.assertIn("ValueError: fixture failure: expected", proc.stdout)
        self.assertIn("(attempt 2)", proc.stdout)
        shown = self.cli("show", "last", "--json").stdout
        job = json.loads(shown)
        self.assertEqual((job["state"], job["attempt"], len(job["earlierErrors"])), ("FAILED", 2, 1))
        self.assertEqual(self.cli("result", "last", expect=1).returncode, 1)

    def test_follow_prints_the_console_output(self):
        script = self.write("chatty.py", "import time\nfor i in range(3):\n    print('line %d from the job' % i)\n"
                                         "    update_job_progress((i + 1) / 3.0)\n    time.sleep(0.1)\n"
                                         "python_data = 'done'\n")
        out = self.cli("run", script, "--follow").stdout
        for i in range(3):
            self.assertIn("line %d from the job" % i, out)
        self.assertIn('python data: "done"', out)
        # The log stays where the command said, after the server stopped.
        log = [l.split(None, 1)[1] for l in out.splitlines() if l.startswith("log:")][0]
        with open(log) as f:
            self.assertIn("line 2 from the job", f.read())

    def test_blend_file(self):
        out = json.loads(self.cli("run", os.path.join(FIXTURES, "jobs", "scene_info.py"),
                                  "--blend", os.path.join(FIXTURES, "blend", "scene.blend"), "--json").stdout)
        self.assertEqual(out["state"], "COMPLETED")
        self.assertIn("Cube", json.dumps(out["pythonData"]))

    def test_usage_errors(self):
        self.assertIn("must be a JSON object", self.cli("run", os.path.join(FIXTURES, "jobs", "echo.py"),
                                                        "--data", "[1, 2]", expect=2).stderr)
        self.assertIn("no such script", self.cli("run", "nope.py", expect=2).stderr)
        self.assertIn("no job", self.cli("show", "job-ffffffffffff", expect=2).stderr)
        self.assertIn("give job ids or --all", self.cli("cancel", expect=2).stderr)
        env = dict(self.env, BLENDER_JOBS_SERVER=os.path.join(self.tmp, "missing", "blender-jobs-server"))
        proc = subprocess.run([sys.executable, CLI, "list"], cwd=self.workspace, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("$BLENDER_JOBS_SERVER names", proc.stderr)

    def test_ctrl_c_interrupts_and_resume_runs_it_again(self):
        marker = os.path.join(self.tmp, "marker")
        script = self.write("slow_once.py", "import os, time\nif os.path.exists(marker):\n"
                                            "    python_data = 'second run'\nelse:\n"
                                            "    open(marker, 'w').close()\n    update_job_progress(0.5)\n"
                                            "    time.sleep(60)\n")
        proc = subprocess.Popen([sys.executable, CLI, "run", script, "--data", json.dumps({"marker": marker})],
                                cwd=self.workspace, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True)
        try:
            deadline = time.monotonic() + JOB_WAIT
            while not os.path.exists(marker) and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            self.assertTrue(os.path.exists(marker), "the job never started")
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(proc.returncode, 130, out + err)
        self.assertIn("resume", err)
        listing = json.loads(self.cli("list", "--json", "--state", "INTERRUPTED").stdout)
        self.assertEqual(listing["count"], 1)
        resumed = self.cli("resume").stdout
        self.assertIn('python data: "second run"', resumed)
        self.assertEqual(json.loads(self.cli("list", "--json", "--state", "INTERRUPTED").stdout)["count"], 0)


if __name__ == "__main__":
    unittest.main()
