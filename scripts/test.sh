#!/usr/bin/env bash
# Runs every test: Java unit tests, the integration tests (the real server jar over stdio,
# with real Blender), the client examples' tests (Python, Node, Blender add-on in background
# Blender and in a window under Xvfb, VS Code extension unit tests and its .vsix in real VS Code),
# all against the same jar, and the install checks (the server distribution, pip install, npm
# pack + install). Installs what is missing first. Ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== Java: unit tests and integration tests (mvn verify)" >&2
mvn -B -ntp verify

export BLENDER_JOBS_JAR="$PWD/server/target/blender-jobs-server.jar"

echo "== Python client tests" >&2
python3 -m unittest discover -s client-examples/python/tests -v

echo "== Node client tests" >&2
bash client-examples/node/run-tests.sh

echo "== Blender add-on tests" >&2
bash client-examples/blender-addon/run-tests.sh

echo "== Blender add-on in a window (Xvfb): screenshot, UI timer while jobs run" >&2
bash client-examples/blender-addon/run-gui-test.sh

echo "== Installing as a user would: server distribution, pip, npm tarball" >&2
bash scripts/test-install.sh

echo "== VS Code extension tests (unit, then the .vsix in real VS Code: code-server + Chromium)" >&2
bash client-examples/vscode/run-tests.sh

echo "== all test suites passed" >&2
