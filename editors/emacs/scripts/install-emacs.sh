#!/usr/bin/env bash
# Emacs >= 30 for the eglot end-to-end test (tests/editors/test_eglot.py): editseq.el itself needs
# Emacs 29.1 (eglot built in), the test drives Emacs 30's eglot (`eglot-execute`, codeAction/resolve).
# Nothing to do if `emacs` on PATH is already 30 or newer. Otherwise, on Debian bookworm as root
# (bookworm has only Emacs 28), installs emacs-nox from bookworm-backports (Emacs 30.1): adds that
# source, updates only that list (everything, if the install then fails), and installs.
# Exits non-zero if no Emacs >= 30 is on PATH at the end.
set -euo pipefail
NEED=30

emacs_major() {
  command -v emacs >/dev/null 2>&1 || return 1
  emacs --version 2>/dev/null | sed -n '1s/^GNU Emacs \([0-9][0-9]*\).*/\1/p'
}

major=$(emacs_major || true)
if [ -n "$major" ] && [ "$major" -ge "$NEED" ]; then
  echo "emacs $major on PATH: nothing to install"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-emacs.sh: Emacs >= $NEED is not on PATH and this is not root: install it yourself" >&2
  exit 1
fi
[ -r /etc/os-release ] && . /etc/os-release
if [ "${ID:-}" != debian ] || [ "${VERSION_CODENAME:-}" != bookworm ]; then
  echo "install-emacs.sh: only Debian bookworm is handled (this is ${PRETTY_NAME:-unknown})" >&2
  exit 1
fi

SOURCES=/etc/apt/sources.list.d/bookworm-backports.sources
if [ ! -f "$SOURCES" ]; then
  cat >"$SOURCES" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

export DEBIAN_FRONTEND=noninteractive
install_emacs() { apt-get install -y --no-install-recommends -t bookworm-backports emacs-nox; }
# Update only the backports list (keeping the others); if the install then fails (e.g. the
# bookworm lists are missing or stale), update everything and try once more.
apt-get update -o Dir::Etc::sourcelist="$SOURCES" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 \
  || apt-get update
install_emacs || { apt-get update && install_emacs; }

major=$(emacs_major || true)
if [ -z "$major" ] || [ "$major" -lt "$NEED" ]; then
  echo "install-emacs.sh: emacs on PATH is still not >= $NEED (${major:-none})" >&2
  exit 1
fi
emacs --version | head -n1
