package dev.blenderjobs.workers.slurm;

import dev.blenderjobs.config.SlurmConfig;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The pilot's batch script and sbatch command line: the secret is in the script (given on stdin)
 * and nowhere on the command line; the user's options are passed as single words.
 */
class PilotScriptTest {
    private static final String SECRET = "ab".repeat(32);

    private static SlurmConfig config() {
        return new SlurmConfig(Optional.empty(), Optional.of("gpu"), 90, 1, Optional.of("proj-1"), Optional.of("high"), 4,
                Optional.of(8000L), Optional.of("gpu:1"), List.of("--constraint=avx2"), "/opt/blender 4.1/blender",
                Duration.ofMinutes(5), Optional.empty(), false);
    }

    @Test
    void theSecretIsInTheScriptAndNeverOnTheCommandLine() {
        PilotScript p = PilotScript.build(config(), "bj-0123456789ab-w1.1", "blender-jobs pilot w1.1", "w1.1", "10.0.0.5",
                40123, SECRET, "cd".repeat(12), Duration.ofMillis(10), "print('runtime')\n", null);
        assertTrue(p.text().contains("export BLENDER_JOBS_SECRET='" + SECRET + "'"));
        assertTrue(p.sbatchArgs().stream().noneMatch(a -> a.contains(SECRET)), p.sbatchArgs().toString());
        assertTrue(p.sbatchArgs().stream().noneMatch(a -> a.contains("BLENDER_JOBS")), "nothing passed with --export");
        assertEquals(List.of("sbatch", "--parsable", "--job-name=bj-0123456789ab-w1.1",
                "--comment=blender-jobs pilot w1.1", "--time=90", "--nodes=1", "--ntasks=1", "--cpus-per-task=4",
                "--output=/dev/null", "--error=/dev/null", "--chdir=/tmp", "--partition=gpu", "--account=proj-1",
                "--qos=high", "--mem=8000", "--gres=gpu:1", "--constraint=avx2"), p.sbatchArgs(),
                "each option one word; the raw ones last");
    }

    @Test
    void theScriptEmbedsTheRuntimeAndKeepsItsFilesPrivate() {
        String runtime = "import os\nprint('it''s a $HOME `x` \"y\"')\n";
        PilotScript p = PilotScript.build(config(), "n", "c", "w2.3", "10.0.0.5", 1, SECRET, "m", Duration.ofMillis(10),
                runtime, null);
        String t = p.text();
        assertTrue(t.startsWith("#!/bin/bash\n"));
        assertTrue(t.contains("umask 077"), "the runtime file is 0600, the folder 0700");
        assertTrue(t.contains(runtime), "embedded verbatim in a quoted here-document");
        int open = t.indexOf("<<'BJ_RUNTIME_");
        String delimiter = t.substring(open + 3, t.indexOf('\'', open + 3));
        assertTrue(t.contains("\n" + delimiter + "\n"), "the here-document is closed");
        assertTrue(t.contains("blender='/opt/blender 4.1/blender'"), "a path with a space stays one word");
        assertTrue(t.contains("BLENDER_JOBS_STAGE_DIR"), "job files travel over the channel");
        assertTrue(t.contains("BLENDER_JOBS_CONSOLE=channel"));
        assertTrue(t.contains("trap 'find \"$dir\" -type d ! -perm -700 -exec chmod u+rwx {} \\; 2>/dev/null; "
                + "rm -rf \"$dir\"' EXIT"),
                "nothing is left on the node, not even a folder a job made unreadable");
        assertTrue(t.contains("export BLENDER_JOBS_TMPDIR=\"$dir/tmp\""), "the pilot's own temp folder is emptied "
                + "after each job");
        assertFalse(t.contains("BLENDER_JOBS_LIFELINE"), "a pilot's stdin is /dev/null, never a lifeline");
    }

    @Test
    void withASharedFilesystemTheStagedRuntimeIsUsedInPlace() {
        PilotScript p = PilotScript.build(config(), "n", "c", "w1.1", "h", 1, SECRET, "m", Duration.ofMillis(10), null,
                Path.of("/shared/state/pilot-runtime/worker_runtime.py"));
        assertTrue(p.text().contains("runtime='/shared/state/pilot-runtime/worker_runtime.py'"));
        assertFalse(p.text().contains("BLENDER_JOBS_STAGE_DIR"), "files are read and written in place");
        assertFalse(p.text().contains("<<'BJ_RUNTIME_"));
    }

    @Test
    void quotingSurvivesSingleQuotes() {
        assertEquals("'it'\\''s'", PilotScript.quote("it's"));
    }

    @Test
    void exitCodesOfThePilotScriptSayWhatWentWrong() {
        assertTrue(PilotScript.meaningOf(PilotScript.EXIT_NO_BLENDER, config(), "node7").contains("--slurm-blender"));
        assertTrue(PilotScript.meaningOf(PilotScript.EXIT_NO_RUNTIME, config(), "node7").contains("--slurm-shared-fs"));
        assertEquals(null, PilotScript.meaningOf(0, config(), null));
    }
}
