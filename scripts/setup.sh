#!/usr/bin/env bash
# Installs what blender-jobs needs on a Debian/Ubuntu machine, skipping what is already there:
# a JDK 17+, Maven, Python 3 with venv (demo, Python client, its install test), Node.js and npm,
# Blender from the OS packages, and Xvfb (the add-on's test in a Blender window).
set -euo pipefail

need=()
if ! command -v javac >/dev/null 2>&1 || ! javac -version 2>&1 | grep -Eq 'javac (1[7-9]|[2-9][0-9])'; then
  need+=(openjdk-17-jdk-headless)
fi
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# `python3 -m venv` (the Python client's install test) needs ensurepip, which Debian packages apart.
venv_probe="$(mktemp -d)"
if ! python3 -m venv "$venv_probe/v" >/dev/null 2>&1; then need+=(python3-venv); fi
rm -rf "$venv_probe"
# A virtual X server for the add-on's test in a real Blender window.
command -v Xvfb >/dev/null 2>&1 || need+=(xvfb)
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
