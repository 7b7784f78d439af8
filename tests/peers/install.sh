#!/usr/bin/env bash
# Install the real VSOA peers used by the interop tests:
#   Python: vsoa==1.0.4 (PyPI) into DIR/venv
#   Node:   vsoa@1.5.1  (npm)  into DIR/node
# Usage: tests/peers/install.sh [DIR]   (default DIR: <repo>/target/peers)
# Idempotent: each part is skipped when it already works.
set -euo pipefail

PY_VSOA_VERSION="1.0.4"
NODE_VSOA_VERSION="1.5.1"

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/../.." && pwd)"
DIR="${1:-$repo_root/target/peers}"

die() { echo "install.sh: error: $*" >&2; exit 1; }
log() { echo "install.sh: $*" >&2; }

mkdir -p "$DIR" || die "cannot create directory $DIR"
DIR="$(cd "$DIR" && pwd)"

# ---- Python peer ---------------------------------------------------------
PY="${PYTHON:-python3}"
if [[ -x "$DIR/venv/bin/python" ]] && "$DIR/venv/bin/python" -c 'import vsoa' >/dev/null 2>&1; then
    log "python vsoa already installed in $DIR/venv (skipping)"
else
    command -v "$PY" >/dev/null 2>&1 || die "python3 not found (set PYTHON=/path/to/python3)"
    "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
        || die "vsoa $PY_VSOA_VERSION needs Python >= 3.10 ($("$PY" --version 2>&1))"
    if [[ ! -x "$DIR/venv/bin/python" ]]; then
        log "creating venv $DIR/venv"
        "$PY" -m venv "$DIR/venv" \
            || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    log "pip install vsoa==$PY_VSOA_VERSION"
    "$DIR/venv/bin/python" -m pip install --disable-pip-version-check -q "vsoa==$PY_VSOA_VERSION" \
        || die "pip install vsoa==$PY_VSOA_VERSION failed (is PyPI reachable?)"
    "$DIR/venv/bin/python" -c 'import vsoa' \
        || die "vsoa installed but 'import vsoa' fails in $DIR/venv"
fi

# ---- Node peer -----------------------------------------------------------
if [[ -d "$DIR/node/node_modules/vsoa" ]]; then
    log "node vsoa already installed in $DIR/node (skipping)"
else
    command -v node >/dev/null 2>&1 || die "node not found (need Node.js >= 18)"
    command -v npm >/dev/null 2>&1 || die "npm not found"
    mkdir -p "$DIR/node"
    log "npm install vsoa@$NODE_VSOA_VERSION"
    npm install --prefix "$DIR/node" --no-audit --no-fund --loglevel=error "vsoa@$NODE_VSOA_VERSION" >&2 \
        || die "npm install vsoa@$NODE_VSOA_VERSION failed (is the npm registry reachable?)"
    [[ -d "$DIR/node/node_modules/vsoa" ]] || die "npm finished but $DIR/node/node_modules/vsoa is missing"
    NODE_PATH="$DIR/node/node_modules" node -e 'require("vsoa")' \
        || { rm -rf "$DIR/node/node_modules/vsoa"; die "vsoa installed but require('vsoa') fails (native binding for $(uname -m)?)"; }
fi

log "ok: python=$DIR/venv/bin/python NODE_PATH=$DIR/node/node_modules"
