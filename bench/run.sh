#!/usr/bin/env bash
# The benchmark: builds the server and the benchmark, then measures the real server jar over
# stdio with real Blender and prints a table (also written to bench/out/latest.md).
# Pass --quick for a short run. Takes about 5 minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mvn -B -q -ntp package -DskipTests
exec java -jar bench/target/blender-jobs-bench.jar --jar server/target/blender-jobs-server.jar --out bench/out/latest.md "$@"
