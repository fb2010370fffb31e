#!/usr/bin/env bash
# System test: the Debian package runs the node in a booted systemd.
#
# Boots Debian trixie (systemd 257, bubblewrap 0.12, AppArmor 4.1) with systemd-nspawn, installs
# the package built from this build (`apt install ./paratime-node_*.deb`: binary, units,
# templates, sysusers/tmpfiles snippets, AppArmor profiles, man pages, completions), adds a config
# and the sample bundle, and checks what an operator relies on, then purges the package. Prints
# one line per check and "N passed, M failed".
#
#   tests/systemd/system-test.sh            (root; PARATIME_DEB: the .deb (scripts/deb.sh);
#                                            PARATIME_NODE_BIN / PARATIME_KVSTORE_BIN default to
#                                            target/debug)
# The rootfs is cached in $PARATIME_ROOTFS_CACHE (default /var/cache/paratime-node-test).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
. "$TOP/tests/systemd/lib.sh"
product_paths

[ "$(id -u)" -eq 0 ] || { echo "system test needs root (systemd-nspawn)"; exit 1; }
for tool in debootstrap systemd-nspawn nsenter; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install debootstrap systemd-container"; exit 1; }
done

# 1. A cached trixie rootfs with systemd, bubblewrap and AppArmor's parser.
ensure_rootfs

WORK=$(mktemp -d /var/tmp/paratime-systest.XXXXXX)
R=$WORK/root
NSPAWN=
cleanup() {
  if [ -n "$NSPAWN" ] && [ -z "${KEEP:-}" ]; then kill "$NSPAWN" 2>/dev/null || true; wait "$NSPAWN" 2>/dev/null || true; fi
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
cp -a "$ROOTFS" "$R"
DEB=${PARATIME_DEB:-$(ls "$TOP"/target/debian/paratime-node_*.deb 2>/dev/null | head -1)}
[ -f "$DEB" ] || { echo "no .deb to install: bash scripts/deb.sh --debug (or set PARATIME_DEB)"; exit 1; }
cp "$DEB" "$R/root/"

# 2. Boot (the package is installed into the running system, as an operator does).
systemd-nspawn -D "$R" --boot --register=no --keep-unit -M paratime-systest --console=passive \
  </dev/null >"$WORK/nspawn.log" 2>&1 &
NSPAWN=$!
LEADER=
for _ in $(seq 1 300); do
  # nspawn's first child can be a short-lived helper: the leader is the container's systemd.
  LEADER=$(pgrep -x -P "$NSPAWN" systemd | head -1 || true)
  [ -n "$LEADER" ] && break
  sleep 0.1
done
[ -n "$LEADER" ] || { cat "$WORK/nspawn.log"; exit 1; }
ct() { nsenter -t "$LEADER" -a "$@"; }
for _ in $(seq 1 300); do
  state=$(nsenter -t "$LEADER" -a systemctl is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  kill -0 "$LEADER" 2>/dev/null || { echo "container exited during boot:"; tail -30 "$WORK/nspawn.log"; exit 1; }
  sleep 0.2
done
[ -n "$state" ] || { echo "container did not finish booting:"; tail -30 "$WORK/nspawn.log"; }
prop() { ct systemctl show -P "$2" "$1"; }
status_json() { ct paratime-node control status -a "unix:$SOCK"; }

# 3. apt install ./paratime-node_*.deb: users, directories, units known, nothing started.
# apt's output is shown when it fails (the container goes with the test).
apt_in() { ct env DEBIAN_FRONTEND=noninteractive sh -c "cd /root && apt-get $* >/root/apt.log 2>&1" || { ct tail -20 /root/apt.log; return 1; }; }
check "apt install ./$(basename "$DEB") succeeds" apt_in install -y -q "./$(basename "$DEB")"
check "the package created the users paratime and paratime-sandbox" ct sh -c 'getent passwd paratime >/dev/null && getent passwd paratime-sandbox >/dev/null'
check "the units are known and nothing was started" sh -c "nsenter -t $LEADER -a systemctl list-unit-files 'paratime-node*' --no-legend | grep -q '^paratime-node.service' && [ \"\$(nsenter -t $LEADER -a systemctl is-active paratime-node.service paratime-node.socket)\" = \"\$(printf 'inactive\ninactive')\" ]"
check "man paratime-node shows the page" sh -c "nsenter -t $LEADER -a env MANPAGER=cat COLUMNS=100 man paratime-node 2>/dev/null | grep -q 'paratime-node-control'"
check "man paratime-node-control-status shows the subcommand's page" sh -c "nsenter -t $LEADER -a env MANPAGER=cat man paratime-node-control-status 2>/dev/null | grep -qi 'status'"
# The completion function, as bash-completion finds it (`complete -p`), asked for the words after
# `paratime-node control `.
complete_control() {
  ct bash -c '. /usr/share/bash-completion/completions/paratime-node
    f=$(complete -p paratime-node | sed "s/.*-F \([^ ]*\).*/\1/")
    COMP_WORDS=(paratime-node control ""); COMP_CWORD=2; "$f" paratime-node "" control
    echo "${COMPREPLY[*]}"'
}
completes_control() { complete_control | grep -qw shutdown; }
check "bash completes 'paratime-node control ' with its subcommands" completes_control
echo "     completions of 'paratime-node control ': $(complete_control 2>/dev/null | cut -c1-150)"
install_inputs "$R"

# 4. AppArmor 4 parses the installed profiles (the host's kernel has no AppArmor LSM: parse, not
# enforce).
for p in bwrap paratime-node paratime-sandbox; do
  check "apparmor profile '$p' parses with $(chroot "$R" apparmor_parser --version | head -1)" \
    chroot "$R" apparmor_parser -Q -K "/etc/apparmor.d/$p" 2>/dev/null
done

# 5. Exposure of the installed unit files, offline, by the systemd they are written for (the
# rootfs's 257: systemd 252 does not know ProtectControlGroups=private and scores the sandbox 1.7).
for u in paratime-node.service:12 paratime-node-sandbox.service:15; do
  unit=${u%%:*}; max=${u##*:}
  check "$unit offline exposure <= $((max / 10)).$((max % 10)) ($(chroot "$R" systemd-analyze security --offline=true "/usr/lib/systemd/system/$unit" 2>/dev/null | tail -1 | grep -o '[0-9]*\.[0-9]'))" \
    chroot "$R" systemd-analyze security --offline=true --threshold="$max" "/usr/lib/systemd/system/$unit" >/dev/null 2>&1
done

check "systemd-analyze verify accepts the units" \
  ct systemd-analyze verify paratime-node.service paratime-node.socket paratime-node-sandbox.service paratime-node-sandbox.socket

# 6. Start, READY and STATUS.
ct systemctl start paratime-node.socket paratime-node-sandbox.socket paratime-node.service || true
check "paratime-node.service is active" wait_for 30 sh -c "[ \"\$(nsenter -t $LEADER -a systemctl is-active paratime-node.service)\" = active ]"
check "STATUS= says the runtime is ready" wait_for 30 sh -c "nsenter -t $LEADER -a systemctl show -P StatusText paratime-node.service | grep -q 'ready: 1 runtime'"
echo "     StatusText: $(prop paratime-node.service StatusText)"

# 7. control status through the socket-activated control socket.
st=$(status_json 2>/dev/null || true)
check "control status: runtime ready" grep -q '"status": "ready"' <<<"$st"
check "control status: provisioner sandbox" grep -q '"provisioner": "sandbox"' <<<"$st"
# Landlock is tested on the host kernel (tests/hosting.rs); here the node must state what it got.
check "journal states the self-confinement in one line" sh -c "nsenter -t $LEADER -a journalctl -u paratime-node.service -o cat --no-pager | grep -q '^self-confinement: landlock'"
echo "     $(ct journalctl -u paratime-node.service -o cat --no-pager | grep '^self-confinement' | tail -1)"

# Prometheus metrics from inside the hardened node unit (bash's /dev/tcp: minbase has no curl).
scrape() { ct bash -c 'exec 3<>/dev/tcp/127.0.0.1/9464 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3'; }
serves_metrics() { scrape | grep -q "^paratime_runtime_ready{runtime=\"$RID\"} 1"; }
check "the node unit serves Prometheus metrics on metrics.address" wait_for 10 serves_metrics

# 8. journald: structured fields.
journal=$(ct journalctl -u paratime-node.service -o json --no-pager)
check "journal has RUNTIME_ID fields" grep -q "\"RUNTIME_ID\":\"$RID\"" <<<"$journal"
check "journal has RUNTIME_NAME fields" grep -q '"RUNTIME_NAME":"kvstore"' <<<"$journal"
check "journal has MODULE fields" grep -q '"MODULE":"runtime/kvstore"' <<<"$journal"
check "journal has CODE_FILE fields" grep -q '"CODE_FILE"' <<<"$journal"
check "journal has PRIORITY from the level (info = 5, notice, as systemd-journal-logger maps it)" grep -q '"PRIORITY":"5"' <<<"$(ct journalctl -o json --no-pager MESSAGE_ID=5c3e6b0e2c9a4d53a8d1f0e3b7a2c401)"
check "journal has stable MESSAGE_IDs" grep -q '"MESSAGE_ID":"5c3e6b0e2c9a4d53a8d1f0e3b7a2c401"' <<<"$journal"
check "journalctl filters by RUNTIME_ID" sh -c "nsenter -t $LEADER -a journalctl --no-pager -o cat RUNTIME_ID=$RID | grep -q 'kvstore configured'"

# 9. The runtime runs in bubblewrap under the sandbox unit, which its socket started.
pid=$(grep -o '"pid": [0-9]*' <<<"$st" | head -1 | grep -o '[0-9]*' || true)
check "sandbox unit was started by its socket" sh -c "nsenter -t $LEADER -a systemctl show -P TriggeredBy paratime-node-sandbox.service | grep -q paratime-node-sandbox.socket && [ \"\$(nsenter -t $LEADER -a systemctl is-active paratime-node-sandbox.service)\" = active ]"
check "ParaTime process is in the sandbox unit's cgroup" sh -c "[ -n '$pid' ] && nsenter -t $LEADER -a cat /proc/$pid/cgroup | grep -q paratime-node-sandbox.service"
check "ParaTime runs under bwrap" sh -c "[ -n '$pid' ] && nsenter -t $LEADER -a sh -c 'cat /proc/\$(cat /proc/$pid/task/$pid/children | cut -d\" \" -f1)/cmdline' | tr '\0' ' ' | grep -q /entrypoint && nsenter -t $LEADER -a cat /proc/$pid/comm | grep -q bwrap"

# Defence in depth: the launcher and every ParaTime run as paratime-sandbox, which can neither read
# the node's keys nor connect to its control socket, even where they are visible.
launcher=$(prop paratime-node-sandbox.service MainPID)
check "the sandbox launcher runs as paratime-sandbox" sh -c "[ \"\$(nsenter -t $LEADER -a stat -c %U /proc/$launcher)\" = paratime-sandbox ]"
check "the ParaTime runs as paratime-sandbox, the node as paratime" sh -c "[ -n '$pid' ] && [ \"\$(nsenter -t $LEADER -a stat -c %U /proc/$pid)\" = paratime-sandbox ] && [ \"\$(nsenter -t $LEADER -a stat -c %U /proc/$(prop paratime-node.service MainPID))\" = paratime ]"
check "paratime-sandbox cannot read the node's key files" sh -c "! nsenter -t $LEADER -a setpriv --reuid=paratime-sandbox --regid=paratime-sandbox --init-groups cat /var/lib/paratime-node/data/identity.pem /var/lib/paratime-node/data/p2p.pem >/dev/null 2>&1"
check "paratime-sandbox cannot connect to the control socket" sh -c "! nsenter -t $LEADER -a setpriv --reuid=paratime-sandbox --regid=paratime-sandbox --init-groups paratime-node control status -a unix:$SOCK >/dev/null 2>&1"
check "the node (control) can, as a contrast" sh -c "nsenter -t $LEADER -a setpriv --reuid=paratime --regid=paratime --init-groups paratime-node control status -a unix:$SOCK >/dev/null 2>&1"
check "the launcher's mounts show no node key" sh -c "nsenter -t $LEADER -a nsenter -t $launcher -m test ! -e /var/lib/paratime-node/data/identity.pem && nsenter -t $LEADER -a nsenter -t $launcher -m test -d /var/lib/paratime-node/data/runtimes/bundles"
check "exploded bundles: group paratime-sandbox, nothing for others" sh -c "[ \"\$(nsenter -t $LEADER -a stat -c '%G %a' /var/lib/paratime-node/data/runtimes/bundles)\" = 'paratime-sandbox 750' ] && [ -z \"\$(nsenter -t $LEADER -a find /var/lib/paratime-node/data/runtimes/bundles -mindepth 1 ! -group paratime-sandbox)\" ] && [ -z \"\$(nsenter -t $LEADER -a find /var/lib/paratime-node/data/runtimes/bundles -perm /o=rwx)\" ]"

# 10. Exposure of both units, online in the booted systemd.
for u in paratime-node.service:12 paratime-node-sandbox.service:15; do
  unit=${u%%:*}; max=${u##*:}
  line=$(ct systemd-analyze security "$unit" --no-pager | tail -1)
  echo "     $line"
  check "$unit exposure <= $((max / 10)).$((max % 10))" ct systemd-analyze security --threshold="$max" "$unit" --no-pager >/dev/null
done

# 11. Watchdog: a stopped main loop gets the unit restarted.
before=$(prop paratime-node.service NRestarts)
main=$(prop paratime-node.service MainPID)
ct sh -c "kill -STOP $main" || true
check "watchdog restarts a stopped node (NRestarts $before -> more)" wait_for 60 sh -c "[ \"\$(nsenter -t $LEADER -a systemctl show -P NRestarts paratime-node.service)\" -gt $before ]"
check "node is active again after the watchdog restart" wait_for 30 sh -c "nsenter -t $LEADER -a systemctl show -P StatusText paratime-node.service | grep -q 'ready: 1 runtime'"

# 12. A second instance from the derived templates (what services.paratime-node.instances uses).
mkdir -p "$R/etc/paratime-node-second"
sed -e 's|/var/lib/paratime-node/data|/var/lib/paratime-node-second/data|' \
    -e 's|/run/paratime-node/|/run/paratime-node-second/|' \
    -e 's|127.0.0.1:9464|127.0.0.1:9465|' \
    "$R/etc/paratime-node/config.yml" > "$R/etc/paratime-node-second/config.yml"
printf 'p2p:\n  port: 9300\n' >> "$R/etc/paratime-node-second/config.yml"
cp "$R/etc/paratime-node/genesis.json" "$R/etc/paratime-node-second/"
ct systemctl daemon-reload
ct systemctl start paratime-node@second.socket paratime-node-sandbox@second.socket paratime-node@second.service || true
check "instance 'second' is ready under paratime-node@second.service" wait_for 30 sh -c "nsenter -t $LEADER -a systemctl show -P StatusText paratime-node@second.service | grep -q 'ready: 1 runtime'"
check "instance 'second' has its own keys and data dir" sh -c "[ \"\$(nsenter -t $LEADER -a paratime-node control status -a unix:/run/paratime-node-second/internal.sock | grep '\"node\"')\" != \"\$(nsenter -t $LEADER -a paratime-node control status -a unix:$SOCK | grep '\"node\"')\" ] && nsenter -t $LEADER -a test -d /var/lib/paratime-node-second/data"
check "paratime-node@.service exposure <= 1.2" ct systemd-analyze security --threshold=12 paratime-node@second.service --no-pager

# 12b. A hostile ParaTime under the shipped units: a fork bomb is killed at runtime.limits.pids
# and restarted, while this instance and the canonical one keep serving.
install_hostile "$R" hostile 9400 fork_bomb "    pids: 32"
ct systemctl start paratime-node@hostile.socket paratime-node-sandbox@hostile.socket paratime-node@hostile.service || true
check "a fork bomb under the units is killed at its pids limit and restarted" wait_for 60 sh -c "nsenter -t $LEADER -a paratime-node control status -a unix:/run/paratime-node-hostile/internal.sock | grep -q '\"restart_count\": [1-9]' && nsenter -t $LEADER -a journalctl -u paratime-node@hostile.service -o cat --no-pager MESSAGE_ID=5c3e6b0e2c9a4d53a8d1f0e3b7a2c414 | grep -q 'exceeded a resource limit'"
check "the canonical instance kept serving meanwhile" sh -c "nsenter -t $LEADER -a paratime-node control status -a unix:$SOCK | grep -q '\"status\": \"ready\"'"
[ -n "${KEEP:-}" ] || ct systemctl stop paratime-node@hostile.service paratime-node-sandbox@hostile.service || true

# 13. Stop leaves no ParaTime; the socket starts the node again.
ct systemctl stop paratime-node.service
check "systemctl stop leaves no runtime process" wait_for 10 sh -c "! nsenter -t $LEADER -a pgrep -f /entrypoint"
check "a connection to the control socket starts the node" sh -c "nsenter -t $LEADER -a paratime-node control status -a unix:$SOCK | grep -q software_version && [ \"\$(nsenter -t $LEADER -a systemctl is-active paratime-node.service)\" = active ]"

# 13b. Reinstalling (the path of an upgrade: postinst configure with the old version) restarts
# the running node on the package's binary and keeps it serving.
before=$(prop paratime-node.service MainPID)
check "apt install --reinstall succeeds" apt_in install -y -q --reinstall "./$(basename "$DEB")"
check "the reinstall restarted the running node (MainPID $before -> another) and it serves" wait_for 30 sh -c "[ \"\$(nsenter -t $LEADER -a systemctl show -P MainPID paratime-node.service)\" != $before ] && nsenter -t $LEADER -a paratime-node control status -a unix:$SOCK | grep -q '\"status\": \"ready\"'"

# 14. apt purge: the node is stopped, no unit, enablement or profile is left; the node's keys and
# the operator's files are kept.
ct systemctl enable paratime-node.socket paratime-node-sandbox.socket >/dev/null 2>&1 || true
check "the container answers (the negative checks below rely on it)" ct test -L /etc/systemd/system/sockets.target.wants/paratime-node.socket
check "apt purge paratime-node succeeds" apt_in purge -y -q paratime-node
check "after the purge no paratime-node process runs" wait_for 10 sh -c "nsenter -t $LEADER -a true && ! nsenter -t $LEADER -a pgrep -x paratime-node"
no_units() { ct true && [ -z "$(ct systemctl list-unit-files 'paratime-node*' --no-legend)" ] && [ -z "$(ct find /usr/lib/systemd/system /etc/systemd/system -name 'paratime-node*')" ]; }
check "after the purge systemd knows no paratime-node unit and no enablement is left" no_units
gone() { for f in "$@"; do ct test ! -e "$f" || return 1; done; }
check "after the purge no AppArmor profile and no /usr/bin/paratime-node" gone /etc/apparmor.d/paratime-node /etc/apparmor.d/paratime-sandbox /etc/apparmor.d/bwrap /usr/bin/paratime-node
check "the purge kept the node's keys and the operator's config" ct test -f /var/lib/paratime-node/data/identity.pem -a -f /etc/paratime-node/config.yml

echo "systemd system test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
