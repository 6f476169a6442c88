#!/usr/bin/env bash
# Installs the Debian packages Tangle needs, skipping what is present.
# Idempotent and non-interactive: safe on a fresh machine, in CI (no stdin) and on a developer's box.
set -euo pipefail

# Headers and libraries the build links (CLZ4, CDW), plus lz4cat for reading traces by hand.
needed=(libdw-dev liblz4-dev lz4 libelf-dev)
missing=()
for pkg in "${needed[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq </dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
