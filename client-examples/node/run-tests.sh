#!/usr/bin/env bash
# Installs, builds and tests the Node client and its CLI against the real server jar and real
# Blender. (The VS Code extension is ../vscode, with its own run-tests.sh.) The jar: $BLENDER_JOBS_JAR, else
# ../../server/target/blender-jobs-server.jar (build it first: mvn -q package -DskipTests).
set -euo pipefail
cd "$(dirname "$0")"

jar="${BLENDER_JOBS_JAR:-../../server/target/blender-jobs-server.jar}"
if [ ! -f "$jar" ]; then
  echo "run-tests.sh: the server jar $jar does not exist; build it or set BLENDER_JOBS_JAR" >&2
  exit 1
fi
export BLENDER_JOBS_JAR="$(cd "$(dirname "$jar")" && pwd)/$(basename "$jar")"

npm ci --no-audit --no-fund   # its prepare script builds dist/ (library, CLI, tests)
npm test
