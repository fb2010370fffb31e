# Shared by the system tests (system-test.sh: systemd-nspawn; vm-test.sh: a QEMU VM): the cached
# Debian trixie rootfs, installing the product into a rootfs exactly as a package would, and the
# check helpers. Source it after setting TOP (the checkout), then call product_paths.

# The binaries under test (this build's, unless given) and the names both tests use.
product_paths() {
  BIN=${PARATIME_NODE_BIN:-$TOP/target/debug/paratime-node}
  KV=${PARATIME_KVSTORE_BIN:-$TOP/target/debug/paratime-kvstore}
  HOSTILE=${PARATIME_HOSTILE_BIN:-$TOP/target/debug/paratime-hostile}
  CACHE=${PARATIME_ROOTFS_CACHE:-/var/cache/paratime-node-test}
  RID=0000000000000000000000000000000000000000000000000000000000000001
  SOCK=/run/paratime-node/internal.sock
}

# A cached trixie rootfs with systemd, bubblewrap, AppArmor's parser, and man-db and
# bash-completion (the package's man pages and completions are tried in it). The directory's
# name changes with the package list, so an older cache is never taken for this one.
ROOTFS_PACKAGES=systemd,systemd-sysv,dbus,bubblewrap,apparmor,man-db,bash-completion
ensure_rootfs() {
  local name
  name=rootfs-$(echo "$ROOTFS_PACKAGES" | sha256sum | cut -c1-8)
  if [ ! -x "$CACHE/$name/usr/lib/systemd/systemd" ]; then
    mkdir -p "$CACHE"
    rm -rf "$CACHE/rootfs.tmp"
    debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" \
      trixie "$CACHE/rootfs.tmp" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log"; exit 1; }
    mv "$CACHE/rootfs.tmp" "$CACHE/$name"
  fi
  ROOTFS=$CACHE/$name
}

# install_product ROOT: the binary, units, templates, sysusers/tmpfiles snippets and AppArmor
# profiles where a package puts them (the VM test; the nspawn test installs the .deb instead),
# then install_inputs.
install_product() {
  local r=$1
  install -m 0755 "$BIN" "$r/usr/bin/paratime-node"
  install -m 0644 "$TOP"/systemd/*.service "$TOP"/systemd/*.socket "$r/etc/systemd/system/"
  sh "$TOP/systemd/make-templates.sh" "$TOP/systemd" "$r/etc/systemd/system"
  install -m 0644 "$TOP/systemd/sysusers.d/paratime-node.conf" "$r/usr/lib/sysusers.d/paratime-node.conf"
  install -m 0644 "$TOP/systemd/tmpfiles.d/paratime-node.conf" "$r/usr/lib/tmpfiles.d/paratime-node.conf"
  mkdir -p "$r/etc/apparmor.d"
  install -m 0644 "$TOP/apparmor/bwrap" "$TOP/apparmor/paratime-node" "$TOP/apparmor/paratime-sandbox" "$r/etc/apparmor.d/"
  install_inputs "$r"
}

# install_inputs ROOT: what the operator adds to the package: the sample bundle, an empty
# genesis and a client config.
install_inputs() {
  local r=$1
  mkdir -p "$r/etc/paratime-node" "$r/var/lib/paratime-node/runtimes"
  "$BIN" bundle build --executable "$KV" --name kvstore --runtime-id "$RID" --version 0.1.0 \
    --output "$r/var/lib/paratime-node/runtimes/kvstore.orc" >/dev/null
  echo '{}' > "$r/etc/paratime-node/genesis.json"
  cat > "$r/etc/paratime-node/config.yml" <<YAML
mode: client
common:
  data_dir: /var/lib/paratime-node/data
  internal_socket_path: $SOCK
  log:
    level:
      default: info
genesis:
  file: /etc/paratime-node/genesis.json
runtime:
  paths:
    - /var/lib/paratime-node/runtimes/kvstore.orc
metrics:
  mode: pull
  address: 127.0.0.1:9464
YAML
}

# install_hostile ROOT NAME PORT ATTACK LIMITS_YAML: an instance of the template units
# (paratime-node@NAME) hosting the test-only hostile ParaTime with ATTACK under LIMITS_YAML
# (lines under runtime.limits).
install_hostile() {
  local r=$1 name=$2 port=$3 attack=$4 limits=$5
  local etc=$r/etc/paratime-node-$name
  mkdir -p "$etc"
  "$BIN" bundle build --executable "$HOSTILE" --name hostile --runtime-id "$RID" --version 0.1.0 \
    --output "$etc/hostile.orc" >/dev/null
  chmod 0644 "$etc/hostile.orc"
  echo '{}' > "$etc/genesis.json"
  cat > "$etc/config.yml" <<YAML
mode: client
common:
  data_dir: /var/lib/paratime-node-$name/data
  internal_socket_path: /run/paratime-node-$name/internal.sock
  log:
    level:
      default: info
genesis:
  file: /etc/paratime-node-$name/genesis.json
p2p:
  port: $port
runtime:
  paths:
    - /etc/paratime-node-$name/hostile.orc
  limits:
$limits
  runtimes:
    - id: "$RID"
      config:
        attack: $attack
YAML
}

passed=0; failed=0
ok()   { echo "PASS $1"; passed=$((passed + 1)); }
bad()  { echo "FAIL $1${2:+: $2}"; failed=$((failed + 1)); }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds, at most SECONDS of wall time
  local end=$(( $(date +%s) + $1 )); shift
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.2
  done
}
