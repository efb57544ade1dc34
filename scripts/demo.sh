#!/usr/bin/env bash
# The main job: builds the server and runs the demo client, which submits the example jobs
# of test-fixtures/ to real Blender workers, shows their progress live and prints results.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== building the server" >&2
mvn -B -q -ntp package -DskipTests
# The demo finds the server like every client does; here, this checkout's build output
# (server/target/blender-jobs-server-<version>/bin/blender-jobs-server).
exec python3 client-examples/python/demo.py "$@"
