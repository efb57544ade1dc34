#!/usr/bin/env bash
# Runs the add-on's end-to-end tests in background Blender against the real server jar, and the
# zip that `mvn package` builds (target/blender_jobs_addon.zip).
#   BLENDER_JOBS_JAR  server jar (default: <repo>/server/target/blender-jobs-server.jar)
#   BLENDER           Blender executable (default: blender on PATH)
# Exits non-zero if any test fails (or Blender itself fails).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export BLENDER_JOBS_JAR="${BLENDER_JOBS_JAR:-$repo/server/target/blender-jobs-server.jar}"
blender="${BLENDER:-blender}"
if [ ! -f "$BLENDER_JOBS_JAR" ]; then
  echo "server jar not found: $BLENDER_JOBS_JAR (build it: cd $repo && mvn -q package -Dmaven.test.skip=true)" >&2
  exit 1
fi
# The add-on keeps its jobs in a per-user folder (XDG_DATA_HOME): a fresh one per run, so the
# tests start with no jobs and leave nothing behind.
data="$(mktemp -d "${TMPDIR:-/tmp}/blender-jobs-addon-tests.XXXXXX")"
trap 'rm -rf "$data"' EXIT
XDG_DATA_HOME="$data" "$blender" -b --factory-startup --python-exit-code 1 --python "$here/tests/test_addon.py"
