# blender-jobs test fixture: makes the job's next record unwritable, as on a full disk.
#
# Reads:   nothing (finds its job directory from its working directory, <job>/work)
# Does:    links <job>/job.json.spare (the file the server writes the next record into) to
#          /dev/full, so the server's write of the COMPLETED record fails with ENOSPC; the failed
#          write deletes the link, so the server's retry succeeds.
# Returns: python_data = {"still": "served"}
#
# The ACTIVE record is written by the server's store thread while the script may already run,
# so the script first waits until that write is over (job.json says ACTIVE, the spare is back
# and job.json.old gone): no other record of this job is written before COMPLETED, and the link
# cannot race the store for the name.
import json
import os
import time

job_dir = os.path.dirname(os.getcwd())
record = os.path.join(job_dir, "job.json")
spare = os.path.join(job_dir, "job.json.spare")
old = os.path.join(job_dir, "job.json.old")
deadline = time.time() + 30
while time.time() < deadline:
    try:
        with open(record) as f:
            active = json.load(f)["job"]["state"] == "ACTIVE"
    except ValueError:
        active = False
    if active and os.path.lexists(spare) and not os.path.lexists(old):
        break
    time.sleep(0.01)
else:
    raise RuntimeError("the ACTIVE record was never written")
os.remove(spare)
os.symlink("/dev/full", spare)
python_data = {"still": "served"}
