#!/usr/bin/env bash
# python_data of about 10 MB, as the project's own clients see it: from the job's COMPLETED
# notification to the value parsed in the client (Python: blender_jobs_client; Node:
# client-examples/node, built). Prints one JSON line per client. Needs the server built
# (mvn -q package -DskipTests) and the Node client built (npm install in client-examples/node).
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER="${BLENDER_JOBS_SERVER:-$(ls -d "$PWD"/server/target/blender-jobs-server-*/bin/blender-jobs-server | tail -1)}"
export BLENDER_JOBS_SERVER="$SERVER"
SCRIPT="python_data = {'values': [i * 0.5 for i in range(1048576)]}"

python3 - "$SCRIPT" <<'PY'
import json, sys, time
sys.path.insert(0, "client-examples/python")
from blender_jobs_client import BlenderJobsClient
script = sys.argv[1]
with BlenderJobsClient(workers=1) as client:
    times = []
    for _ in range(5):
        job = client.add_job(script_text=script)["jobId"]
        final = client.wait_for_job(job, timeout=300)
        done = time.perf_counter()
        value = client.get_python_data(job)
        times.append(time.perf_counter() - done)
    times.sort()
    print(json.dumps({"client": "python", "values": len(value["values"]), "seconds": times,
                      "median": times[len(times) // 2]}))
PY

node - "$SCRIPT" <<'JS'
const { startClient } = require('./client-examples/node/dist/src');
(async () => {
    const script = process.argv[2];
    const client = await startClient({ workers: 1 });
    const times = [];
    let n = 0;
    for (let i = 0; i < 5; i++) {
        const job = await client.addJob({ scriptText: script });
        await client.waitForJob(job.jobId, 300_000);
        const done = process.hrtime.bigint();
        const value = await client.getPythonData(job.jobId);
        times.push(Number(process.hrtime.bigint() - done) / 1e9);
        n = value.values.length;
    }
    times.sort((a, b) => a - b);
    console.log(JSON.stringify({ client: 'node', values: n, seconds: times, median: times[2] }));
    await client.dispose();
})().catch((e) => { console.error(e); process.exit(1); });
JS
