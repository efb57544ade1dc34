#!/usr/bin/env bash
# The "installable" checks, as a new user would install things, from the build output of
# `mvn package` (run it first; scripts/test.sh does):
#   1. the server distribution: server/target/blender-jobs-server-<version>.tar.gz unpacked into a
#      temporary prefix, its bin/blender-jobs-server on PATH;
#   2. Python: `pip install ./client-examples/python` into a fresh venv (no package index needed),
#      then `blender-jobs run test-fixtures/jobs/bmesh_quad.py` from the checkout (the server found
#      in its build output, nothing else set up), and from an unrelated folder (the server found on
#      PATH); a later `blender-jobs list` / `result last` there sees the job, and its result file;
#   3. Node: the tarball of `npm pack` installed into a new project, whose `blender-jobs-cli` runs a
#      job (the server on PATH), and which says where it looked when no server is found.
# The Blender add-on's zip is installed into fresh Blenders by client-examples/blender-addon's
# run-tests.sh (background) and run-gui-test.sh (a window under Xvfb).
# Every check prints "ok" or "FAIL"; the last line is "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
work="$(mktemp -d "${TMPDIR:-/tmp}/blender-jobs-install-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT
passed=0
failed=()

ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed+=("$1"); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/    | /' "$2" | tail -40; return 0; }
check() { # check "what" command...: runs the command with its output in $work/out
  local what="$1"; shift
  local started=$SECONDS
  if "$@" >"$work/out" 2>&1; then ok "$what ($((SECONDS - started)) s)"; else fail "$what" "$work/out"; fi
}

# A user's environment: none of the test suite's settings, jobs kept in a private data home.
unset BLENDER_JOBS_JAR BLENDER_JOBS_SERVER BLENDER_JOBS_CLIENT_DIR
export XDG_DATA_HOME="$work/data"
base_path="$PATH"

tarball="$(ls -t server/target/blender-jobs-server-*.tar.gz 2>/dev/null | head -n1)"
if [ -z "$tarball" ]; then
  echo "test-install.sh: no server/target/blender-jobs-server-*.tar.gz; run mvn -q package -DskipTests first" >&2
  exit 1
fi

echo "== the server distribution" >&2
mkdir -p "$work/prefix"
check "unpack $(basename "$tarball")" tar -xzf "$tarball" -C "$work/prefix"
dist_bin="$(ls -d "$work"/prefix/blender-jobs-server-*/bin)"
check "bin/blender-jobs-server --version" "$dist_bin/blender-jobs-server" --version

# The launcher's JVM flags, with stand-in javas that print their arguments: the native-heap trim
# only for JVMs that have the flag (any other refuses to start with it), arguments passed on.
launcher_flags() { # launcher_flags VERSION: what the launcher gives a java whose release file says VERSION
  local jdk="$work/jdk-$1"
  mkdir -p "$jdk/bin"
  printf '#!/bin/sh\necho "$@"\n' >"$jdk/bin/java"
  chmod +x "$jdk/bin/java"
  [ -n "$1" ] && echo "JAVA_VERSION=\"$1\"" >"$jdk/release"
  BLENDER_JOBS_JAVA="$jdk/bin/java" BLENDER_JOBS_JAVA_OPTS="-Xmx300m" "$dist_bin/blender-jobs-server" --workers 2
}
flags_ok=1
for v in 17.0.9 17.0.15 21.0.1 22 25.0.1; do
  case "$(launcher_flags "$v")" in
    "-XX:+UseSerialGC -Xms32m -Xmx512m -Xmn24m -XX:TieredStopAtLevel=1 -XX:+UnlockExperimentalVMOptions -XX:TrimNativeHeapInterval=2000 -Xmx300m -jar "*"/lib/blender-jobs-server.jar --workers 2") ;;
    *) flags_ok=0; echo "java $v: $(launcher_flags "$v")" >"$work/out" ;;
  esac
done
for v in 17.0.8 17 18.0.2 21 ""; do
  case "$(launcher_flags "$v")" in
    "-XX:+UseSerialGC -Xms32m -Xmx512m -Xmn24m -XX:TieredStopAtLevel=1 -Xmx300m -jar "*"/lib/blender-jobs-server.jar --workers 2") ;;
    *) flags_ok=0; echo "java '$v': $(launcher_flags "$v")" >"$work/out" ;;
  esac
done
if [ "$flags_ok" = 1 ]; then ok "the launcher's JVM flags (native-heap trim only on JDK 17.0.9+, 21.0.1+, 22+)"
else fail "the launcher's JVM flags" "$work/out"; fi

echo "== Python: pip install ./client-examples/python into a fresh venv" >&2
check "python3 -m venv" python3 -m venv "$work/venv"
check "pip install ./client-examples/python" "$work/venv/bin/pip" install -q --disable-pip-version-check ./client-examples/python
venv_bin="$work/venv/bin"

# From the checkout's root, nothing else set up: the server is the checkout's build output.
run_json="$work/run-checkout.json"
if (cd "$repo" && PATH="$venv_bin:$base_path" blender-jobs run test-fixtures/jobs/bmesh_quad.py --json) \
    >"$run_json" 2>"$work/err"; then
  if python3 - "$run_json" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
assert r["state"] == "COMPLETED", r
assert r["pythonData"] == {"faces_before": 6, "faces_after": 7}, r["pythonData"]
assert os.path.isfile(r["dataBlocks"]["library"]), r["dataBlocks"]
PY
  then ok "blender-jobs run test-fixtures/jobs/bmesh_quad.py in the checkout (server: its build output)"
  else fail "the run's result" "$run_json"; fi
else
  cat "$run_json" >>"$work/err"; fail "blender-jobs run test-fixtures/jobs/bmesh_quad.py in the checkout" "$work/err"
fi

# From an unrelated folder: the installed distribution on PATH.
mkdir -p "$work/elsewhere"
elsewhere_run() { (cd "$work/elsewhere" && PATH="$venv_bin:$dist_bin:$base_path" blender-jobs "$@"); }
check "blender-jobs run (another folder, server on PATH, plain progress lines)" \
  elsewhere_run run "$repo/test-fixtures/jobs/bmesh_quad.py" --data '{"note": "from elsewhere"}'
cp "$work/out" "$work/run-elsewhere.txt"
if grep -q '^bmesh_quad.py 100% COMPLETED' "$work/run-elsewhere.txt" \
   && grep -q 'python data: {"faces_after": 7, "faces_before": 6}' "$work/run-elsewhere.txt"; then
  ok "the run printed progress lines and its python data"
else fail "the run's output" "$work/run-elsewhere.txt"; fi
library="$(sed -n 's/^library: *//p' "$work/run-elsewhere.txt")"
if [ -n "$library" ] && [ -f "$library" ]; then ok "the printed library path is valid after the command ended"
else fail "library path $library" "$work/run-elsewhere.txt"; fi
check "blender-jobs result last (a later invocation in that folder)" elsewhere_run result last --json
if grep -q '"faces_after": 7' "$work/out"; then ok "result last sees the earlier job"; else fail "result last" "$work/out"; fi
if (cd "$work/elsewhere" && PATH="$venv_bin:$base_path" blender-jobs list) >"$work/out" 2>&1; then
  fail "without a server, blender-jobs list should fail" "$work/out"
elif grep -q "3. blender-jobs-server on PATH: not found" "$work/out"; then
  ok "without a server: the error names the lookup order"
else fail "the no-server error" "$work/out"; fi

echo "== Node: npm pack, then npm install of the tarball into a new project" >&2
node_dir="$repo/client-examples/node"
if [ ! -d "$node_dir/node_modules" ]; then
  check "npm ci in client-examples/node" bash -c "cd '$node_dir' && npm ci --no-audit --no-fund"
fi
check "npm pack" bash -c "cd '$node_dir' && npm pack --silent --pack-destination '$work' >'$work/packname'"
pack="$work/$(tail -n1 "$work/packname" 2>/dev/null)"
if tar -tzf "$pack" >"$work/out" 2>&1 && ! grep -q 'package/dist/test/\|package/src/\|package/test/' "$work/out" \
   && grep -q 'package/dist/src/cli.js' "$work/out"; then
  ok "the tarball holds the compiled library and CLI, no tests ($(wc -l <"$work/out") files)"
else fail "tarball contents" "$work/out"; fi
mkdir -p "$work/node-project"
check "npm install <tarball> into a new project" \
  bash -c "cd '$work/node-project' && npm init -y >/dev/null && npm install --no-audit --no-fund '$pack'"
check "npx blender-jobs-cli runs a job (server on PATH)" \
  bash -c "cd '$work/node-project' && PATH='$dist_bin:$base_path' npx --no-install blender-jobs-cli --workers 1 '$repo/test-fixtures/jobs/bmesh_quad.py'"
if grep -q '1 of 1 jobs ended as expected' "$work/out" && grep -q '"faces_after":7' "$work/out"; then
  ok "the Node CLI's job completed"
else fail "the Node CLI's output" "$work/out"; fi
if (cd "$work/node-project" && npx --no-install blender-jobs-cli "$repo/test-fixtures/jobs/bmesh_quad.py") >"$work/out" 2>&1; then
  fail "without a server, the Node CLI should fail" "$work/out"
elif grep -q "2. \$BLENDER_JOBS_SERVER: not set" "$work/out" && grep -q "3. blender-jobs-server on PATH: not found" "$work/out"; then
  ok "without a server: the Node CLI names the lookup order"
else fail "the Node CLI's no-server error" "$work/out"; fi

echo "${#failed[@]} failed: ${failed[*]:-}" >&2
echo "$passed passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
