#!/usr/bin/env bash
# Installs what blender-jobs needs on a Debian/Ubuntu machine, skipping what is already there:
# a JDK 17+, Maven, Python 3 (demo and Python client) and Blender from the OS packages.
set -euo pipefail

need=()
if ! command -v javac >/dev/null 2>&1 || ! javac -version 2>&1 | grep -Eq 'javac (1[7-9]|[2-9][0-9])'; then
  need+=(openjdk-17-jdk-headless)
fi
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# Node.js and npm for the Node client example and its tests.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ -z "${BLENDER:-}" ] && ! command -v blender >/dev/null 2>&1; then
  need+=(blender)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
fi

echo "setup: $(javac -version 2>&1), $(mvn -v 2>/dev/null | head -1 | sed 's/\x1b\[[0-9;]*m//g')" >&2
echo "setup: $(${BLENDER:-blender} --version 2>/dev/null | head -1)" >&2
