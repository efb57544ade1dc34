package dev.blenderjobs.it;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 10, the Blender side: what a job's script can do to its worker (leak state into the next
 * job, start daemons, fill the temp folder, disable the runtime's inbox) and what it gets for odd
 * results. One warm worker shared by most tests, so consecutive jobs run in the same Blender
 * (each such test checks that they did); the tests that kill a server start their own.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class RuntimeHardeningIT {
    static final Duration HANG_GUARD = Duration.ofSeconds(90);
    static ServerProcess server;

    @BeforeAll
    static void start() throws Exception {
        server = ServerProcess.start("--workers", "1");
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
    }

    static JsonObject run(String script) throws Exception {
        return server.runToEnd(Json.of("scriptText", script), HANG_GUARD);
    }

    static JsonObject run(JsonObject params) throws Exception {
        return server.runToEnd(params, HANG_GUARD);
    }

    static JsonObject data(JsonObject finished) throws Exception {
        assertEquals("COMPLETED", finished.get("state").getAsString(), finished.toString());
        return server.callObject("getPythonData", Json.jobId(finished.get("jobId").getAsString()));
    }

    static String log(JsonObject finished) throws Exception {
        JsonObject job = server.callObject("getJob", Json.jobId(finished.get("jobId").getAsString()));
        return Files.readString(Path.of(job.get("logFile").getAsString()));
    }

    static ProcessHandle process(long pid) {
        return ProcessHandle.of(pid).orElse(null);
    }

    static void assertGoneWithin(long pid, Duration within, String what) throws InterruptedException {
        ProcessHandle p = process(pid);
        if (p == null) return;
        try {
            ProtocolIT.assertNoneAliveWithin(List.of(p), within);
        } catch (AssertionError e) {
            throw new AssertionError(what + " (pid " + pid + ") is still running after " + within.toSeconds() + " s", e);
        }
    }

    // ------------------------------------------------------------------ item 7: state a warm worker must not leak

    /**
     * What a job can change in the interpreter and the process, as the next job sees it. The
     * leak script changes every one of these; the next job on the same worker must see what the
     * job before the leak saw.
     */
    static final String FINGERPRINT = """
            import builtins, faulthandler, gc, locale, os, random, resource, signal, socket, sys, tempfile
            import threading, warnings
            def name(h):
                if h is None or isinstance(h, (int, float, str)):
                    return h if not isinstance(h, int) else int(h)
                return '%s.%s' % (getattr(h, '__module__', '?'), getattr(h, '__qualname__', type(h).__qualname__))
            umask = os.umask(0o022)
            os.umask(umask)
            rlimits = {}
            for r in ('RLIMIT_CPU', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE', 'RLIMIT_AS', 'RLIMIT_CORE'):
                rlimits[r] = list(resource.getrlimit(getattr(resource, r)))
            python_data = {
                'pid': os.getpid(),
                'umask': umask,
                'signals': {str(int(s)): name(signal.getsignal(s)) for s in sorted(signal.valid_signals())
                            if s not in (signal.SIGKILL, signal.SIGSTOP)},
                'blocked': sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
                'itimerReal': signal.getitimer(signal.ITIMER_REAL)[0],
                'itimerVirtual': signal.getitimer(signal.ITIMER_VIRTUAL)[0],
                'trace': name(sys.gettrace()),
                'profile': name(sys.getprofile()),
                'threadingTrace': name(getattr(threading, '_trace_hook', None)),
                'threadingProfile': name(getattr(threading, '_profile_hook', None)),
                'recursionLimit': sys.getrecursionlimit(),
                'switchInterval': sys.getswitchinterval(),
                'metaPath': [name(f) if isinstance(f, type) else name(type(f)) for f in sys.meta_path],
                'pathHooks': [name(h) for h in sys.path_hooks],
                'hooks': [name(sys.excepthook), name(sys.displayhook), name(sys.breakpointhook),
                          name(getattr(sys, 'unraisablehook', None))],
                'builtinLen': name(builtins.len),
                'builtinOpen': name(builtins.open),
                'extraBuiltin': hasattr(builtins, 'leaked_builtin'),
                'warnings': [len(warnings.filters), str(warnings.filters[0][0]) if warnings.filters else None],
                'gc': [gc.isenabled(), list(gc.get_threshold()), len(gc.callbacks)],
                'socketTimeout': socket.getdefaulttimeout(),
                'locale': locale.setlocale(locale.LC_ALL, None),
                'faulthandler': faulthandler.is_enabled(),
                'rlimits': rlimits,
                'dontWriteBytecode': sys.dont_write_bytecode,
                'tempdir': tempfile.gettempdir(),
                'randomSeedLeaked': random.random() == random.Random(12345).random(),
                'priority': os.getpriority(os.PRIO_PROCESS, 0),
                'affinity': sorted(os.sched_getaffinity(0)),
                'stdinReads': sys.stdin.read(1) if sys.stdin else None,
            }
            """;

    static final String LEAK = """
            import builtins, faulthandler, gc, locale, os, random, resource, signal, socket, sys, tempfile
            import threading, warnings
            def hook(*args, **kwargs):
                return None
            os.umask(0o777)
            signal.signal(signal.SIGUSR1, hook)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2, signal.SIGALRM])
            signal.setitimer(signal.ITIMER_REAL, 300)
            signal.setitimer(signal.ITIMER_VIRTUAL, 300)
            sys.settrace(hook)
            sys.setprofile(hook)
            threading.settrace(hook)
            threading.setprofile(hook)
            sys.setrecursionlimit(200)
            sys.setswitchinterval(0.25)
            class LeakedFinder:
                def find_spec(self, name, path=None, target=None):
                    return None
            sys.meta_path.insert(0, LeakedFinder())
            sys.path_hooks.insert(0, hook)
            sys.excepthook = hook
            sys.displayhook = hook
            sys.breakpointhook = hook
            sys.unraisablehook = hook
            builtins.len = lambda x: 42
            builtins.open = hook
            builtins.leaked_builtin = 1
            warnings.simplefilter('error')
            gc.disable()
            gc.set_threshold(1, 2, 3)
            gc.callbacks.append(hook)
            socket.setdefaulttimeout(0.001)
            locale.setlocale(locale.LC_ALL, 'C' if locale.setlocale(locale.LC_ALL, None) != 'C' else 'C.UTF-8')
            faulthandler.enable()
            hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
            resource.setrlimit(resource.RLIMIT_CPU, (3600, hard))
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
            sys.dont_write_bytecode = not sys.dont_write_bytecode
            tempfile.tempdir = '/nonexistent-leaked-tempdir'
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
            random.seed(12345)
            python_data = {'pid': os.getpid()}
            """;

    @Test
    void whatAJobChangesInTheInterpreterIsResetBeforeTheNextJobOnTheSameWorker() throws Exception {
        JsonObject before = data(run(FINGERPRINT));
        JsonObject leaked = data(run(LEAK));
        JsonObject after = data(run(FINGERPRINT));
        assertEquals(before.get("pid"), leaked.get("pid"), "the three jobs must share a worker for this test to mean anything");
        assertEquals(before.get("pid"), after.get("pid"),
                "all of this can be reset: the worker must be reused, not replaced");
        for (String key : before.keySet()) {
            assertEquals(before.get(key), after.get(key), "the next job sees " + key + " as the leaking job left it");
        }
    }

    @Test
    void aJobThatLowersItsWorkersPriorityDoesNotSlowTheNextJob() throws Exception {
        String probe = "import os\npython_data = {'priority': os.getpriority(os.PRIO_PROCESS, 0), 'pid': os.getpid()}";
        JsonObject before = data(run(probe));
        data(run("import os\nos.nice(5)\npython_data = {}"));
        JsonObject after = data(run(probe));
        // Reset where the worker may raise its priority again (root), replaced where it may not.
        assertEquals(before.get("priority"), after.get("priority"), "the next job runs at the lowered priority");
    }

    @Test
    void anAlarmSetByOneJobDoesNotKillTheNext() throws Exception {
        JsonObject first = data(run("import os, signal\nsignal.setitimer(signal.ITIMER_REAL, 1.0)\n"
                + "python_data = {'pid': os.getpid()}"));
        JsonObject next = data(run("import os, time\ntime.sleep(2.0)\npython_data = {'pid': os.getpid()}"));
        assertEquals(first.get("pid"), next.get("pid"), "both jobs must run in the same Blender");
        JsonObject alarm = data(run("import os, signal\nsignal.alarm(1)\npython_data = {'pid': os.getpid()}"));
        JsonObject third = data(run("import os, time\ntime.sleep(2.0)\npython_data = {'pid': os.getpid()}"));
        assertEquals(alarm.get("pid"), third.get("pid"));
    }

    @Test
    void aThreadLeftRunningByAJobNeverReachesTheNextJobsLogOrProgress() throws Exception {
        JsonObject leaky = run("""
                import os, threading, time
                def chatter():
                    while True:
                        print('LEAKED-PRINT', flush=True)
                        update_job_progress(0.5, 'LEAKED-PROGRESS')
                        time.sleep(0.02)
                threading.Thread(target=chatter, daemon=True).start()
                time.sleep(0.1)
                python_data = {'pid': os.getpid()}
                """);
        JsonObject leakyData = data(leaky);
        JsonObject next = run("""
                import os, time
                for i in range(10):
                    print('next job line %d' % i, flush=True)
                    update_job_progress(i / 10, 'own progress')
                    time.sleep(0.05)
                python_data = {'pid': os.getpid()}
                """);
        JsonObject nextData = data(next);
        String nextLog = log(next);
        assertTrue(nextLog.contains("next job line 9"), nextLog);
        assertFalse(nextLog.contains("LEAKED-PRINT"), "a thread of the previous job printed into this job's log:\n" + nextLog);
        for (ServerProcess.Notification n : server.notificationsFor(next.get("jobId").getAsString())) {
            if (n.method().equals("job/progress") && n.params().has("message")) {
                assertEquals("own progress", n.params().get("message").getAsString(), n.toString());
            }
        }
        assertNotEquals(leakyData.get("pid"), nextData.get("pid"),
                "a live thread cannot be reset: the worker must be replaced");
    }

    @Test
    void aPatchedStandardModuleIsNotSeenByTheNextJob() throws Exception {
        JsonObject patched = data(run("""
                import os, string
                string.capwords = lambda s, sep=None: 'patched'
                string.Template.substitute = lambda self, *a, **k: 'patched'
                python_data = {'pid': os.getpid(), 'capwords': string.capwords('a b')}
                """));
        assertEquals("patched", patched.get("capwords").getAsString());
        JsonObject next = data(run("""
                import os, string
                python_data = {'pid': os.getpid(), 'capwords': string.capwords('a b'),
                               'template': string.Template('$x').substitute(x='y')}
                """));
        assertEquals("A B", next.get("capwords").getAsString());
        assertEquals("y", next.get("template").getAsString());
        assertNotEquals(patched.get("pid"), next.get("pid"), "a patched module cannot be reset: the worker must be replaced");
    }

    // ------------------------------------------------------------------ item 8: daemons

    static final String DOUBLE_FORK = """
            import os, subprocess, time
            pidfile = os.path.join(os.getcwd(), 'daemon.pid')
            subprocess.run(['setsid', '-f', 'sh', '-c', 'echo $$ > "$0"; exec sleep 1000', pidfile], check=True)
            for _ in range(500):
                if os.path.exists(pidfile) and open(pidfile).read().strip():
                    break
                time.sleep(0.01)
            daemon = int(open(pidfile).read())
            """;

    @Test
    void aDaemonStartedWithADoubleForkAndSetsidDiesWithItsJob() throws Exception {
        JsonObject done = data(run(DOUBLE_FORK + "python_data = {'daemon': daemon, 'pid': os.getpid()}"));
        long daemon = done.get("daemon").getAsLong();
        assertGoneWithin(daemon, Duration.ofSeconds(5), "the job's double-forked daemon");
        JsonObject next = data(run("import os\npython_data = {'pid': os.getpid()}"));
        assertEquals(done.get("pid"), next.get("pid"), "the worker is reused after killing the daemon");
    }

    @Test
    void aDaemonOfAJobWhoseBlenderExitsIsKilledByTheServer() throws Exception {
        JsonObject done = run(DOUBLE_FORK + """
                update_job_progress(0.5, str(daemon))
                time.sleep(1.5)
                os._exit(0)
                """);
        assertEquals("BLENDER_EXITED", done.getAsJsonObject("error").get("kind").getAsString(), done.toString());
        String daemon = null;
        for (ServerProcess.Notification n : server.notificationsFor(done.get("jobId").getAsString())) {
            if (n.method().equals("job/progress") && n.params().has("message")) daemon = n.params().get("message").getAsString();
        }
        assertTrue(daemon != null, "the job reported its daemon's pid");
        assertGoneWithin(Long.parseLong(daemon), Duration.ofSeconds(5), "the daemon of a job whose Blender exited");
    }

    // ------------------------------------------------------------------ item 15: the worker's temp folder

    @Test
    void theTempFolderIsEmptiedAfterEachJobWithoutFollowingLinksOutOfIt(@TempDir Path outside) throws Exception {
        Path keep = outside.resolve("keep.txt");
        Files.writeString(keep, "must survive");
        JsonObject filled = data(run(Json.of("scriptText", """
                import os, tempfile
                tmp = tempfile.gettempdir()
                with open(os.path.join(tmp, 'big.bin'), 'wb') as f:
                    f.write(b'x' * (64 * 1024 * 1024))
                os.makedirs(os.path.join(tmp, 'locked', 'deeper'))
                open(os.path.join(tmp, 'locked', 'deeper', 'file'), 'w').close()
                os.chmod(os.path.join(tmp, 'locked', 'deeper'), 0)
                os.chmod(os.path.join(tmp, 'locked'), 0o500)
                os.symlink(outside, os.path.join(tmp, 'link-out'))
                os.symlink(os.path.join(outside, 'keep.txt'), os.path.join(tmp, 'file-link-out'))
                fd, name = tempfile.mkstemp()
                os.write(fd, b'left open')
                python_data = {'pid': os.getpid(), 'tmp': tmp, 'listed': sorted(os.listdir(tmp))}
                """, "passedData", Json.of("outside", outside.toString()))));
        assertTrue(filled.getAsJsonArray("listed").toString().contains("big.bin"), filled.toString());
        JsonObject seen = data(run("""
                import bpy, os, tempfile
                tmp = tempfile.gettempdir()
                found = []
                for root, dirs, files in os.walk(tmp):
                    for n in dirs + files:
                        found.append(os.path.relpath(os.path.join(root, n), tmp))
                session = os.path.relpath(bpy.app.tempdir.rstrip(os.sep), tmp)
                python_data = {'pid': os.getpid(), 'tmp': tmp, 'found': sorted(f for f in found if f != session),
                               'sessionDirKept': os.path.isdir(bpy.app.tempdir)}
                """));
        assertEquals(filled.get("pid"), seen.get("pid"), "both jobs must run in the same Blender");
        assertEquals(filled.get("tmp"), seen.get("tmp"));
        assertEquals(new JsonArray(), seen.getAsJsonArray("found"), "the next job finds the temp folder as it was");
        assertTrue(seen.get("sessionDirKept").getAsBoolean(), "Blender's own temp folder is kept (emptied)");
        assertEquals("must survive", Files.readString(keep), "a link out of the temp folder was followed");
    }

    // ------------------------------------------------------------------ item 9 and smaller: odd results

    @Test
    void aProgressMessageWithALoneSurrogateDoesNotFailTheJob() throws Exception {
        JsonObject done = run("""
                update_job_progress(0.3, 'file-\\udcff')
                import os
                python_data = {'names': os.fsdecode(b'ok')}
                """);
        assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
        List<String> messages = new ArrayList<>();
        for (ServerProcess.Notification n : server.notificationsFor(done.get("jobId").getAsString())) {
            if (n.method().equals("job/progress") && n.params().has("message")) messages.add(n.params().get("message").getAsString());
        }
        assertEquals(List.of("file-\\udcff"), messages, "the surrogate arrives escaped, not replaced or dropped");
        server.assertProtocolStreamClean();
    }

    @Test
    void aLoneSurrogateInPythonDataFailsNamingTheKeyPath() throws Exception {
        JsonObject value = run("python_data = {'files': ['ok', 'bad-\\udcff']}");
        assertEquals("FAILED", value.get("state").getAsString(), value.toString());
        JsonObject error = value.getAsJsonObject("error");
        assertEquals("RESULT_NOT_SERIALIZABLE", error.get("kind").getAsString(), error.toString());
        assertTrue(error.get("message").getAsString().contains("python_data['files'][1]"), error.toString());

        JsonObject key = run("python_data = {'names': {'bad-\\udcff': 1}}");
        JsonObject keyError = key.getAsJsonObject("error");
        assertEquals("RESULT_NOT_SERIALIZABLE", keyError.get("kind").getAsString(), keyError.toString());
        assertTrue(keyError.get("message").getAsString().contains("a key of python_data['names']"), keyError.toString());
    }

    @Test
    void boolAndNoneKeysInPythonDataFailAsDocumentedAndStringKeysThatLookLikeThemPass() throws Exception {
        for (String key : new String[]{"True", "False", "None"}) {
            JsonObject done = run("python_data = {'flags': {" + key + ": 1}}");
            assertEquals("FAILED", done.get("state").getAsString(), key + ": " + done);
            JsonObject error = done.getAsJsonObject("error");
            assertEquals("RESULT_NOT_SERIALIZABLE", error.get("kind").getAsString(), error.toString());
            assertTrue(error.get("message").getAsString().contains("python_data['flags'] has a key of type "), error.toString());
        }
        JsonObject fine = data(run("python_data = {'true': 1, 'false': {'null': 2}, 1: 'int key', 2.5: 'float key'}"));
        assertEquals(Json.obj("{'true': 1, 'false': {'null': 2}, '1': 'int key', '2.5': 'float key'}"), fine);
    }

    @Test
    void quitBlenderInAScriptCompletesTheJobAsBlenderItselfWould() throws Exception {
        // In background mode Blender only schedules the quit for its event loop, which does not
        // run while a script runs (`blender -b --python x.py` quits when x.py has returned).
        JsonObject quit = data(run("""
                import bpy, os
                python_data = {'before': 1, 'pid': os.getpid()}
                bpy.ops.wm.quit_blender()
                python_data['after'] = 2
                """));
        assertEquals(2, quit.get("after").getAsInt());
        JsonObject next = data(run("import os\npython_data = {'pid': os.getpid()}"));
        assertEquals(quit.get("pid"), next.get("pid"), "the request to quit does not linger in the worker");
    }

    // ------------------------------------------------------------------ item 11: collecting data blocks

    @Test
    void thirtyThousandDataBlocksAreCollectedInAboutTheTimeTheirWriteTakes() throws Exception {
        JsonObject done = run("""
                import bpy, os, time
                materials = [bpy.data.materials.new('m%d' % i) for i in range(30000)]
                started = time.perf_counter()
                bpy.data.libraries.write(os.path.join(os.getcwd(), 'alone.blend'), set(materials), fake_user=True)
                python_data = {'writeMs': (time.perf_counter() - started) * 1000}
                data_blocks = materials + materials[:100]
                """);
        JsonObject result = data(done);
        JsonObject job = server.callObject("getJob", Json.jobId(done.get("jobId").getAsString()));
        double collectMs = job.getAsJsonObject("timing").get("collectMs").getAsDouble();
        double writeMs = result.get("writeMs").getAsDouble();
        JsonObject blocks = server.callObject("getDataBlocks", Json.jobId(done.get("jobId").getAsString()));
        assertEquals(30000, blocks.getAsJsonObject("blocks").getAsJsonArray("materials").size());
        // Quadratic de-duplication took 4.3 s here for 30,000 blocks (the write about 0.3 s);
        // linear collection costs about the write plus 0.1 s. The bound is loose on purpose.
        assertTrue(collectMs < 3 * writeMs + 1500, "collecting 30,000 blocks took " + collectMs
                + " ms where writing them alone took " + writeMs + " ms");
    }

    // ------------------------------------------------------------------ item 5: a sabotaged runtime

    /** Where the runtime writes the result before renaming it, as a script sees it. */
    static final String RESULT_TMP = "tmp = os.path.join(os.path.dirname(os.getcwd()), 'result', 'python_data.json.tmp')\n";

    @Test
    void aScriptThatPatchesOsFunctionsStillGetsItsResultWrittenWhole() throws Exception {
        // The result is written right after the script, with its patches still in place: the
        // runtime writes with the functions it bound at start, so a result file with a tail
        // left (and the job failed for it) cannot be what a script's patch of os makes.
        JsonObject done = run("import os\n" + RESULT_TMP + """
                open(tmp, 'w').write('x' * 100000)
                os.write = lambda fd, data: len(data)
                os.ftruncate = lambda fd, size: None
                os.fstat = lambda fd: type('Stat', (), {'st_size': 0})()
                os.replace = lambda a, b: None
                python_data = {'ok': 1}
                """);
        assertEquals("{\"ok\":1}", data(done).toString());
    }

    @Test
    void aFifoWhereTheResultGoesFailsTheJobAtOnceInsteadOfHangingTheWorker() throws Exception {
        // No timeout given: opened to write without O_NONBLOCK, the FIFO would block the worker
        // until a reader came, for ever.
        JsonObject done = run("import os\n" + RESULT_TMP + """
                os.remove(tmp)
                os.mkfifo(tmp)
                python_data = {'ok': 2}
                """);
        assertEquals("FAILED", done.get("state").getAsString(), done.toString());
        assertEquals("RESULT_WRITE_FAILED", done.getAsJsonObject("error").get("kind").getAsString(), done.toString());
        assertEquals("COMPLETED", run("python_data = {'after': True}").get("state").getAsString());
    }

    static final String SABOTAGE_INBOX = """
            import gc, time
            channels = [o for o in gc.get_objects() if type(o).__name__ == 'Channel' and hasattr(o, 'sock')]
            assert channels, 'found no channel to sabotage'
            for c in channels:
                c.receive = lambda: time.sleep(10 ** 6)
            python_data = {}
            """;

    @Test
    void aWorkerThatDoesNotTakeItsNextJobIsReplacedAndTheJobRetried() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            assertEquals("COMPLETED", s.runToEnd(Json.of("scriptText", SABOTAGE_INBOX), HANG_GUARD).get("state").getAsString());
            // Its frame was being read when the inbox was sabotaged: it still runs.
            assertEquals("COMPLETED", s.runToEnd(Json.of("scriptText", "python_data = {}"), HANG_GUARD)
                    .get("state").getAsString());
            long started = System.nanoTime();
            JsonObject done = s.runToEnd(Json.of("scriptText", "python_data = {'ran': True}", "maxAttempts", 2), HANG_GUARD);
            assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
            assertEquals(2, done.get("attempt").getAsInt());
            JsonObject job = s.callObject("getJob", Json.jobId(done.get("jobId").getAsString()));
            JsonObject first = job.getAsJsonArray("earlierErrors").get(0).getAsJsonObject();
            assertEquals("PROTOCOL_VIOLATION", first.get("kind").getAsString(), first.toString());
            assertTrue(first.get("message").getAsString().contains("did not take"), first.toString());
            long seconds = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - started);
            assertTrue(seconds < 40, "the stuck worker was replaced after " + seconds + " s");
        }
    }

    @Test
    void killingTheServerEndsSabotagedWorkersAndTheDaemonsOfTheirJobs() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "2")) {
            s.awaitConnectedWorkers(2, HANG_GUARD);
            // Worker 1 (the first free one takes each job): its inbox is disabled, then it runs
            // a job that starts a daemon and sleeps.
            assertEquals("COMPLETED", s.runToEnd(Json.of("scriptText", SABOTAGE_INBOX), HANG_GUARD).get("state").getAsString());
            String sleeper = s.addJob(Json.of("scriptText", DOUBLE_FORK
                    + "update_job_progress(0.5, str(daemon))\ntime.sleep(300)"));
            // Worker 2: a job that ignores SIGTERM, starts a daemon and never lets another
            // Python thread run (so no watchdog thread, no inbox thread, no signal handler).
            String hog = s.addJob(Json.of("scriptText", DOUBLE_FORK + """
                    import signal, sys
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                    update_job_progress(0.5, str(daemon))
                    sys.setswitchinterval(10 ** 6)
                    while True:
                        pass
                    """));
            List<Long> daemons = new ArrayList<>();
            for (String id : List.of(sleeper, hog)) {
                ServerProcess.Notification n = s.awaitNotification(x -> x.method().equals("job/progress")
                        && x.params().get("jobId").getAsString().equals(id) && x.params().has("message"), HANG_GUARD);
                daemons.add(Long.parseLong(n.params().get("message").getAsString()));
            }
            long pid1 = s.callObject("getJob", Json.jobId(sleeper)).get("workerPid").getAsLong();
            long pid2 = s.callObject("getJob", Json.jobId(hog)).get("workerPid").getAsLong();
            assertNotEquals(pid1, pid2);
            List<ProcessHandle> everything = new ArrayList<>(s.blenderProcesses());
            for (long d : daemons) {
                ProcessHandle h = process(d);
                assertTrue(h != null && h.isAlive(), "daemon " + d + " runs before the server is killed");
                everything.add(h);
            }
            s.process.toHandle().destroyForcibly(); // SIGKILL: no shutdown hook, no goodbye on the channel
            ProtocolIT.assertNoneAliveWithin(everything, Duration.ofSeconds(8));
        }
    }
}
