# blender-jobs test fixture: a 20-second loop meant to be killed by a job timeout.
#
# Reads:   nothing
# Reports: update_job_progress((i + 1) / 200) after each of 200 steps of 0.1 s
# Returns: python_data = {"finished": True, "steps": 200} only if it was NOT stopped
import time

STEPS = 200
for i in range(STEPS):
    time.sleep(0.1)
    update_job_progress((i + 1) / float(STEPS), "step %d of %d" % (i + 1, STEPS))

python_data = {"finished": True, "steps": STEPS}
