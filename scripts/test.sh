#!/usr/bin/env bash
# Runs every test: Java unit tests, the integration tests (the real server jar over stdio,
# with real Blender), and the client examples' tests. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== Java: unit tests and integration tests (mvn verify)" >&2
mvn -B -ntp verify

if [ -d client-examples/python/tests ]; then
  echo "== Python client tests" >&2
  BLENDER_JOBS_JAR="$PWD/server/target/blender-jobs-server.jar" \
    python3 -m unittest discover -s client-examples/python/tests -v
fi
