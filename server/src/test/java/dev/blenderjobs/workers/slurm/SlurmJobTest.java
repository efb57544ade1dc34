package dev.blenderjobs.workers.slurm;

import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Slurm's output, as captured from Slurm 22.05 on the test cluster, parsed defensively. */
class SlurmJobTest {

    @Test
    void sbatchParsablePrintsTheIdWithOrWithoutTheCluster() {
        assertEquals(Optional.of("1234"), SlurmJob.parseSbatch("1234\n"));
        assertEquals(Optional.of("1234"), SlurmJob.parseSbatch("1234;bj0\n"));
        assertEquals(Optional.of("77_3"), SlurmJob.parseSbatch("77_3"));
        assertEquals(Optional.empty(), SlurmJob.parseSbatch(""));
        assertEquals(Optional.empty(), SlurmJob.parseSbatch("Submitted batch job 12"), "not --parsable output");
        assertEquals(Optional.empty(), SlurmJob.parseSbatch("sbatch: error: invalid partition"));
    }

    @Test
    void squeueLinesGiveStateReasonNodeAndTimeLeft() {
        Map<String, SlurmJob> jobs = SlurmJob.parseSqueue(String.join("\n",
                "3|bj-0123456789ab-w1.1|RUNNING|None|node1|59:58",
                "4|bj-0123456789ab-w2.1|PENDING|PartitionDown||1:00:00",
                "5|wrap|PENDING|ReqNodeNotAvail, UnavailableNodes:node2||1-02:03:04",
                "6|x|RUNNING|None|node2|UNLIMITED",
                "garbage line",
                "7|too|few|fields",
                ""));
        assertEquals(4, jobs.size());
        SlurmJob running = jobs.get("3");
        assertEquals("RUNNING", running.state());
        assertNull(running.reason(), "None is no reason");
        assertEquals("node1", running.node());
        assertEquals(59 * 60 + 58, running.timeLeftSeconds());
        assertTrue(running.running() && running.live());
        SlurmJob pending = jobs.get("4");
        assertEquals("PartitionDown", pending.reason());
        assertNull(pending.node());
        assertFalse(SlurmJob.WAITING_TURN.contains(pending.reason()), "a down partition is not waiting one's turn");
        assertEquals(((24 + 2) * 60 + 3) * 60 + 4, jobs.get("5").timeLeftSeconds());
        assertNull(jobs.get("6").timeLeftSeconds(), "UNLIMITED: no lease");
    }

    @Test
    void timeLeftFormats() {
        assertEquals(5, SlurmJob.parseTimeLeft("0:05"));
        assertEquals(3600, SlurmJob.parseTimeLeft("1:00:00"));
        assertEquals(86400, SlurmJob.parseTimeLeft("1-00:00:00"));
        assertNull(SlurmJob.parseTimeLeft("NOT_SET"));
        assertNull(SlurmJob.parseTimeLeft("INVALID"));
        assertNull(SlurmJob.parseTimeLeft(""));
    }

    @Test
    void scontrolGivesTheFinalStateExitCodeAndNode() {
        String cancelled = "JobId=3 JobName=bj-0123456789ab-w1.1 UserId=root(0) GroupId=root(0) MCS_label=N/A "
                + "Priority=4294901757 Nice=0 Account=(null) QOS=(null) JobState=CANCELLED Reason=None "
                + "Dependency=(null) Requeue=0 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:15 RunTime=00:00:01 "
                + "Comment=blender-jobs pilot w1.1 of server 0123456789ab NodeList=node1 BatchHost=node1 "
                + "WorkDir=/tmp StdErr=/dev/null";
        SlurmJob j = SlurmJob.parseScontrol(cancelled).orElseThrow();
        assertEquals("3", j.id());
        assertEquals("CANCELLED", j.state());
        assertEquals(128 + 15, j.exitCode(), "killed by signal 15");
        assertEquals("node1", j.node());
        assertFalse(j.live());
        assertTrue(SlurmJob.TAKEN_AWAY.contains(j.state()));
        SlurmJob failed = SlurmJob.parseScontrol("JobId=9 JobState=FAILED Reason=NonZeroExitCode ExitCode=97:0 "
                + "NodeList=node2").orElseThrow();
        assertEquals(97, failed.exitCode());
        assertEquals("NonZeroExitCode", failed.reason());
        assertEquals("node2", failed.node());
        SlurmJob pending = SlurmJob.parseScontrol("JobId=10 JobState=PENDING Reason=Priority NodeList=(null)").orElseThrow();
        assertNull(pending.node());
        assertTrue(pending.live());
        assertEquals(Optional.empty(), SlurmJob.parseScontrol("slurm_load_jobs error: Invalid job id specified"));
    }
}
