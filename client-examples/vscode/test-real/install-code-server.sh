#!/usr/bin/env bash
# Installs code-server 4.100.3 (VS Code 1.100.3 served to a browser; its extension host is the
# real one) from the npm registry into a cache folder, and the Debian packages the real-VS Code
# test needs (chromium, libkrb5-dev, ripgrep). Prints the folder of the install on stdout.
# An install that finished before (its marker file exists and it answers --version) is reused.
#
# Its postinstall would download ripgrep from the internet, so its steps are done by hand
# (see ../../../../shared/vscode-real.md on the project machines).
set -euo pipefail

VERSION=4.100.3
cache="${BLENDER_JOBS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/blender-jobs}"
dir="$cache/code-server-$VERSION"
entry="$dir/node_modules/code-server/out/node/entry.js"
marker="$dir/.installed"

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v rg >/dev/null 2>&1 || missing+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || missing+=(libkrb5-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-code-server: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi

# code-server writes a default config file under $XDG_CONFIG_HOME on its first start, even for
# --version: keep it inside the install.
export XDG_CONFIG_HOME="$dir/.config"
if [ -f "$marker" ] && node "$entry" --version >/dev/null 2>&1; then
  echo "$dir"
  exit 0
fi

echo "install-code-server: installing code-server $VERSION into $dir (takes a few minutes, once)" >&2
rm -rf "$dir"
mkdir -p "$dir"
(
  set -x
  cd "$dir"
  echo '{"name": "code-server-cache", "private": true}' > package.json
  nice npm install --no-audit --no-fund --ignore-scripts "code-server@$VERSION"
  cd node_modules/code-server/lib/vscode
  nice npm install --no-audit --no-fund --omit=dev --ignore-scripts
  # @vscode/ripgrep's postinstall skips its download when bin/ exists.
  mkdir -p node_modules/@vscode/ripgrep/bin
  cp "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
  npm_config_yes=true nice npm rebuild
  (cd extensions && nice npm install --no-audit --no-fund --omit=dev)
  ln -sfn node_modules node_modules.asar
  (cd bin/remote-cli && ln -sfn code-linux.sh code-server)
  cd "$dir"
  npm_config_yes=true nice npm rebuild argon2
) >&2
node "$entry" --version >&2
touch "$marker"
echo "$dir"
