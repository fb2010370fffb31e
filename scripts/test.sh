#!/usr/bin/env bash
# The whole test suite, as README.md states it and CI runs it: installs what the tests need
# (bubblewrap, debootstrap, systemd-nspawn and QEMU; cargo-nextest if missing), then format, lints,
# and every test: real bwrap, real Landlock, and the shipped units in a booted systemd.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
command -v openssl >/dev/null || need_apt+=(openssl)
# The systemd system test: a Debian rootfs booted with systemd-nspawn.
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v systemd-nspawn >/dev/null || need_apt+=(systemd-container)
# The cgroup v2 VM test: trixie's kernel booted in QEMU (these hosts are cgroup v1).
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
# Nix files are parsed with Debian's nix (nixpkgs cannot be fetched here, so nothing is built).
command -v nix-instantiate >/dev/null || need_apt+=(nix-bin)
# scripts/nix-check.sh compares rendered YAML and JSON with jq.
command -v jq >/dev/null || need_apt+=(jq)
# The metrics test scrapes a localnet node with a real Prometheus server.
command -v prometheus >/dev/null || need_apt+=(prometheus)
# The Debian package (scripts/deb.sh, installed by the systemd system test): cargo-deb (below)
# and dpkg-shlibdeps for its dependencies.
command -v dpkg-shlibdeps >/dev/null || need_apt+=(dpkg-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
cargo deb --version 2>/dev/null | grep -q 3.8.0 || cargo install --locked --version 3.8.0 cargo-deb
command -v nixpkgs-fmt >/dev/null || cargo install --locked nixpkgs-fmt
command -v deadnix >/dev/null || cargo install --locked deadnix

# CI builds once from a clean clone: incremental data (GBs for this workspace) is never reused.
if [[ "${CI:-}" == "true" ]]; then export CARGO_INCREMENTAL=0; fi
# A CI run died of a full disk while building the fuzz targets: every stage says what it left.
# Every stage also says when it ended and how long it took: the budget is CI's 45 minutes.
started=$(date +%s)
last=$started
disk() {
  local now; now=$(date +%s)
  echo "stage done: $1 at $(date -u +%H:%M:%S), $((now - last)) s (total $((now - started)) s)"
  last=$now
  echo "disk after $1: $(df -h --output=avail . | tail -n 1 | tr -d ' ') free; target/ $(du -sh target 2>/dev/null | cut -f1), fuzz/target/ $(du -sh fuzz/target 2>/dev/null | cut -f1)"
}
disk "the installs"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
disk "clippy"
# The integration tests run the sample ParaTime's binary, which no test target of its own pulls
# in: build every binary first; nextest reuses the same debug artifacts.
cargo build --workspace --bins --locked
disk "the build"
bash scripts/nix-check.sh
disk "nix-check"
cargo nextest run --workspace --locked --profile "${NEXTEST_PROFILE:-default}"
disk "the tests"
# A validator that equivocates, through Malachite's test-only Byzantine proxy (a feature of
# paratime-bft that the node's build never enables).
cargo nextest run -p paratime-bft --features byzantine --locked --profile "${NEXTEST_PROFILE:-default}" -E 'binary(byzantine)'
disk "the byzantine test"
# Every fuzz target briefly (30 s each), from an unoptimized build with debug assertions: an
# optimized, instrumented build of the node and its ~470 dependencies took 14 minutes of CI's
# 40 on 2 cores, the unoptimized one under 5. Long runs during the work use the optimized build:
# bash scripts/fuzz.sh 600.
FUZZ_BUILD=dev bash scripts/fuzz.sh 30
disk "the fuzz targets"
