#!/usr/bin/env bash
# Installs, builds, packages and tests the VS Code extension: the unit tests (plain node), then
# the .vsix in real VS Code (code-server 4.100.3, installed once into a cache folder, with
# Chromium, against the real server jar and real Blender). The jar: $BLENDER_JOBS_JAR, else
# ../../server/target/blender-jobs-server.jar (build it first: mvn -q package -DskipTests).
set -euo pipefail
cd "$(dirname "$0")"

jar="${BLENDER_JOBS_JAR:-../../server/target/blender-jobs-server.jar}"
if [ ! -f "$jar" ]; then
  echo "run-tests.sh: the server jar $jar does not exist; build it or set BLENDER_JOBS_JAR" >&2
  exit 1
fi
export BLENDER_JOBS_JAR="$(cd "$(dirname "$jar")" && pwd)/$(basename "$jar")"

major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "run-tests.sh: Node.js 20 or newer is needed (@vscode/vsce 3, code-server 4.100.3); this is $(node --version)" >&2
  exit 1
fi

npm ci --no-audit --no-fund
npm run build          # tsc (type check, tests into build/), esbuild (dist/extension.js)
npm run package        # vsce: dist/blender-jobs-vscode.vsix
npm test               # unit tests
npm run test:real      # the .vsix in real VS Code
