#!/bin/sh
# Derives the template units for extra instances (paratime-node@NAME.service and friends) from the
# shipped units, so there is one source of truth: same hardening, instance-specific paths.
#   systemd/make-templates.sh SRC_DIR OUT_DIR
set -eu
src=$1; out=$2
mkdir -p "$out"
for unit in paratime-node.service paratime-node.socket paratime-node-sandbox.service paratime-node-sandbox.socket; do
  base=${unit%.*}; ext=${unit##*.}
  sed -e 's/paratime-node-sandbox\.socket/paratime-node-sandbox@%i.socket/g' \
      -e 's/paratime-node-sandbox\.service/paratime-node-sandbox@%i.service/g' \
      -e 's/paratime-node\.socket/paratime-node@%i.socket/g' \
      -e 's/paratime-node\.service/paratime-node@%i.service/g' \
      -e 's|/run/paratime-node-sandbox/|/run/paratime-node-sandbox-%i/|g' \
      -e 's|/run/paratime-node/|/run/paratime-node-%i/|g' \
      -e 's|/var/lib/paratime-node\([/ :]\)|/var/lib/paratime-node-%i\1|g' \
      -e 's|/var/lib/paratime-node$|/var/lib/paratime-node-%i|' \
      -e 's|/etc/paratime-node/|/etc/paratime-node-%i/|g' \
      -e 's|^StateDirectory=paratime-node$|StateDirectory=paratime-node-%i|' \
      -e 's|^\(Description=.*\)$|\1 (instance %i)|' \
      "$src/$unit" > "$out/$base@.$ext"
done
