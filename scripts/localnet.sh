#!/usr/bin/env bash
# The main job: installs what the node needs (bubblewrap), builds, and runs a local network on
# this machine — a validator, three compute nodes and a client node, each a separate
# paratime-node process hosting the sample ParaTime in bubblewrap — until Ctrl-C.
#   scripts/localnet.sh [DIR [LOCALNET OPTIONS…]]   (default: a new directory under /tmp;
#                                                   options e.g. --duration 60s --json)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v bwrap >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq bubblewrap
fi
cargo build --release --workspace --locked
DIR=${1:-$(mktemp -d /tmp/paratime-localnet.XXXXXX)}
exec target/release/paratime-dev localnet --dir "$DIR" "${@:2}"
