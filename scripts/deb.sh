#!/usr/bin/env bash
# Builds the Debian package with cargo-deb: target/debian/paratime-node_<version>-1_<arch>.deb.
# The binary (stripped), the units and the instance templates derived from them, the
# sysusers.d/tmpfiles.d snippets, the AppArmor profiles, an example config, and man pages and
# shell completions generated from this build's command line (paratime-dev gen-docs).
#   scripts/deb.sh [--debug] [--no-build]
#     --debug     package target/debug's binary (what the system test does: it reuses the test
#                 build) instead of a release build
#     --no-build  use the binaries already built
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
build=1
for a in "$@"; do
  case "$a" in
    --debug) profile=debug ;;
    --no-build) build=0 ;;
    *) echo "usage: scripts/deb.sh [--debug] [--no-build]" >&2; exit 2 ;;
  esac
done
# The version the package was built and tested with.
CARGO_DEB_VERSION=3.8.0
if ! command -v cargo-deb >/dev/null || ! cargo deb --version | grep -q "$CARGO_DEB_VERSION"; then
  cargo install --locked --version "$CARGO_DEB_VERSION" cargo-deb
fi
for tool in dpkg-deb dpkg-shlibdeps strip; do
  command -v "$tool" >/dev/null || { echo "deb.sh: $tool not found: apt-get install dpkg-dev binutils" >&2; exit 1; }
done
if [ "$build" = 1 ]; then
  flags=(--locked --bin paratime-node --bin paratime-dev)
  [ "$profile" = release ] && flags+=(--release)
  cargo build "${flags[@]}"
fi
bin=target/$profile
for b in paratime-node paratime-dev; do
  [ -x "$bin/$b" ] || { echo "deb.sh: $bin/$b not built (run without --no-build)" >&2; exit 1; }
done
assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets/bin" "$assets/templates" "$assets/gen"
strip -o "$assets/bin/paratime-node" "$bin/paratime-node"
sh systemd/make-templates.sh systemd "$assets/templates"
"$bin/paratime-dev" gen-docs --out "$assets/gen" >/dev/null
mv "$assets/gen/dist/man" "$assets/man"
mv "$assets/gen/dist/completions" "$assets/completions"
gzip -9n "$assets"/man/*.1
cargo deb --no-build --no-strip --locked -p paratime-node
