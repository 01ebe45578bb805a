#!/usr/bin/env bash
# Install the tooling of the VS Code end-to-end test (`npm run e2e`), idempotently:
#   * Debian packages: chromium (headless browser), ripgrep, build-essential, libkrb5-dev, python3
#   * code-server 4.100.3 (a real VS Code 1.100.3; the last release that runs on Node 20) from npm,
#     installed with --ignore-scripts and its native modules rebuilt locally, because its
#     postinstall downloads prebuilt binaries from GitHub (the team notes, clients.md §4.3).
# Everything npm-side goes into the cache folder $EDITSEQ_E2E_CACHE
# (default: editors/vscode/.e2e-cache). A finished install writes $CACHE/.complete; a second run
# only checks it. Needs root (or sudo) for apt-get; set EDITSEQ_E2E_SKIP_APT=1 to skip that step.
set -euo pipefail

HERE="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${EDITSEQ_E2E_CACHE:-$HERE/.e2e-cache}"
CODE_SERVER_VERSION="4.100.3"
STAMP="$CACHE/.complete"
# The native rebuild is heavy: keep it to one or two compile jobs on a shared machine.
JOBS="${EDITSEQ_E2E_JOBS:-2}"

say() { printf '[install-e2e] %s\n' "$*"; }

# -- 1. Debian packages --------------------------------------------------------------------------
need_apt=()
for pkg in chromium ripgrep build-essential libkrb5-dev python3; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  if [[ "${EDITSEQ_E2E_SKIP_APT:-}" == 1 ]]; then
    say "missing Debian packages: ${need_apt[*]} (EDITSEQ_E2E_SKIP_APT=1, not installing)"; exit 1
  fi
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  say "apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
else
  say "Debian packages present"
fi

# -- 2. code-server from npm ---------------------------------------------------------------------
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [[ "$node_major" != 20 ]]; then
  say "warning: Node $node_major; code-server $CODE_SERVER_VERSION is built for Node 20"
fi

CS="$CACHE/node_modules/code-server"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$CODE_SERVER_VERSION" && -f "$CS/out/node/entry.js" ]]; then
  say "code-server $CODE_SERVER_VERSION already installed in $CACHE"
else
  say "installing code-server $CODE_SERVER_VERSION into $CACHE"
  rm -f "$STAMP"
  mkdir -p "$CACHE"
  cd "$CACHE"
  [[ -f package.json ]] || printf '{"name":"editseq-e2e-tools","private":true}\n' > package.json
  export npm_config_nodedir="${npm_config_nodedir:-/usr}"   # node-gyp: the local Node headers
  export JOBS npm_config_jobs="$JOBS" MAKEFLAGS="-j$JOBS"
  export npm_config_yes=true                                  # node-pty's install calls `npx node-gyp`
  npm install --no-audit --no-fund --ignore-scripts "code-server@$CODE_SERVER_VERSION"
  npm_config_build_from_source=true npm rebuild argon2
  cd "$CS/lib/vscode"
  npm install --no-audit --no-fund --omit=dev --ignore-scripts
  (cd extensions && npm install --no-audit --no-fund --omit=dev --ignore-scripts)
  npm rebuild node-pty @vscode/spdlog native-watchdog kerberos @vscode/deviceid
  mkdir -p node_modules/@vscode/ripgrep/bin
  cp "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
  ln -sfn node_modules node_modules.asar
  (cd bin/remote-cli && ln -sfn code-linux.sh code-server)
  (cd bin/helpers && ln -sfn browser-linux.sh browser.sh)
  printf '%s' "$CODE_SERVER_VERSION" > "$STAMP"
fi

version="$(node "$CS/out/node/entry.js" --config /dev/null --version 2>/dev/null | head -1)"
say "code-server: $version"
say "chromium: $(command -v chromium)"
[[ "$version" == "$CODE_SERVER_VERSION"* ]] || { say "code-server does not run"; exit 1; }
say "done"
