#!/usr/bin/env bash
# Installs what Tangle needs on a fresh Debian machine, skipping what is present.
# Idempotent and non-interactive: safe on a fresh machine, in CI (no stdin) and on a developer's box.
#
#   scripts/setup.sh          build and run: liblz4 and libdw headers, lz4cat
#   scripts/setup.sh --test   also what the tests use to check outputs: chromium (the HTML report is
#                             loaded in a headless browser) and Python's jsonschema (SARIF validation).
#                             These two are best effort: without them those two checks skip and say so.
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
updated=0

missing_of() {
  local out=()
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      out+=("$pkg")
    fi
  done
  echo "${out[@]:-}"
}

apt_install() {
  if [ "$updated" -eq 0 ]; then
    $SUDO apt-get update -qq </dev/null
    updated=1
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null
}

# Required: the build links these (Sources/CLZ4, Sources/CDW).
required=$(missing_of libdw-dev liblz4-dev libelf-dev lz4)
if [ -n "$required" ]; then
  echo "setup: installing $required" >&2
  # shellcheck disable=SC2086
  apt_install $required
fi

if [ "$want_test" -eq 1 ]; then
  optional=$(missing_of chromium)
  if [ -n "$optional" ]; then
    echo "setup: installing $optional (for the HTML report test)" >&2
    # shellcheck disable=SC2086
    apt_install $optional || echo "setup: could not install $optional; the HTML browser check will skip" >&2
  fi
  if command -v python3 >/dev/null && ! python3 -c "import jsonschema" 2>/dev/null; then
    echo "setup: installing Python's jsonschema (for SARIF validation)" >&2
    python3 -m pip install -q jsonschema </dev/null >/dev/null 2>&1 \
      || apt_install python3-jsonschema \
      || echo "setup: could not install jsonschema; the SARIF schema check will skip" >&2
  fi
fi
