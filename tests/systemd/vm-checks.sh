#!/bin/sh
# Runs inside the VM that tests/systemd/vm-test.sh boots (cgroup v2, the shipped units installed):
# every runtime gets its own cgroup below the sandbox unit's delegated one, and the kernel enforces
# its memory, pids and CPU limits. Prints one line per check.
set -u
. /usr/local/lib/paratime-lib.sh
SOCK=/run/paratime-node/internal.sock
LIMIT_ID=5c3e6b0e2c9a4d53a8d1f0e3b7a2c414
sock_of() { if [ -z "$1" ]; then echo $SOCK; else echo "/run/paratime-node-$1/internal.sock"; fi; }
status_of() { paratime-node control status -a "unix:$(sock_of "$1")" 2>/dev/null; }
pid_of() { status_of "$1" | grep -o '"pid": [0-9]*' | head -1 | grep -o '[0-9]*'; }
cg_of() { sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null; }
unit_of() { if [ -z "$1" ]; then echo paratime-node.service; else echo "paratime-node@$1.service"; fi; }
journal_of() { journalctl -u "$(unit_of "$1")" -o cat --no-pager; }
# The limit-kill events' ERR fields (the journal's message is the same for every limit).
limit_kills() { journalctl -u "$(unit_of "$1")" -o verbose --no-pager MESSAGE_ID=$LIMIT_ID | sed -n 's/^ *ERR=//p'; }
start() {
  s=${1:+@$1}
  systemctl start "paratime-node$s.socket" "paratime-node-sandbox$s.socket" "paratime-node$s.service"
}
is_ready() { status_of "$1" | grep -q '"status": "ready"'; }
restarted_for() { # restarted_for INSTANCE TEXT: restarted, and a limit kill naming TEXT
  status_of "$1" | grep -q '"restart_count": [1-9]' && limit_kills "$1" | grep -q "$2"
}
has_pid() { [ -n "$(pid_of "$1")" ]; }
runtime_cgroups() { ls -d "/sys/fs/cgroup/system.slice/paratime-node-sandbox$1.service"/runtime-* 2>/dev/null | wc -l; }
no_runtime_cgroups() { [ "$(runtime_cgroups "$1")" -eq 0 ]; }
escape_done() { journal_of escape | grep -q 'cgroup_escape write /sys/fs/cgroup/cpu.max'; }

echo "     $(uname -r), $(systemctl --version | head -1), $(nproc) CPUs"
check "the kernel has cgroup v2 with cpu, memory and pids" \
  sh -c 'for c in cpu memory pids; do grep -qw $c /sys/fs/cgroup/cgroup.controllers || exit 1; done'

stop() { systemctl stop "paratime-node@$1.service" "paratime-node-sandbox@$1.service"; }
# One attack at a time: under CPU emulation, all four at once starve the VM (a fork bomb's
# runtime then misses its pings before it reaches pids.max).
start ""
dump() {
  echo "---- AppArmor denials"
  journalctl -k -o cat --no-pager | grep -i 'apparmor="DENIED"' | sed 's/.*apparmor=/apparmor=/' | sort | uniq -c | tail -40
  echo "---- sandbox launcher journal (last 30 lines)"
  journalctl -u paratime-node-sandbox.service -o cat --no-pager | tail -30
  echo "---- node journal (last 30 lines)"
  journal_of "" | tail -30
}
check "paratime-node.service is ready" wait_for 180 is_ready ""
if [ "$failed" -gt 0 ]; then dump; echo "VM test: $passed passed, $failed failed (stopped: nothing else can pass)"; exit 1; fi
launcher=$(systemctl show -P MainPID paratime-node-sandbox.service)
node=$(systemctl show -P MainPID paratime-node.service)
check "AppArmor confines the node with its profile ($(cat /proc/$node/attr/current))" \
  test "$(cat /proc/$node/attr/current)" = "paratime-node (enforce)"
check "the launcher runs under paratime-sandbox, which bubblewrap can exec from under no_new_privs ($(cat /proc/$launcher/attr/current))" \
  test "$(cat /proc/$launcher/attr/current)" = "paratime-sandbox (unconfined)"
check "the launcher moved itself into its delegated cgroup's leaf ($(cg_of "$launcher"))" \
  test "$(cg_of "$launcher")" = /system.slice/paratime-node-sandbox.service/launcher
pid=$(pid_of "")
cg=$(cg_of "${pid:-0}")
check "the ParaTime runs in a cgroup of its own (${cg:-none})" \
  sh -c "echo '$cg' | grep -Eq '^/system.slice/paratime-node-sandbox.service/runtime-[0-9]+$'"
d=/sys/fs/cgroup${cg:-/none}
echo "     memory.max $(cat "$d/memory.max"), pids.max $(cat "$d/pids.max"), cpu.max $(cat "$d/cpu.max"), memory.oom.group $(cat "$d/memory.oom.group")"
# 2gb = 2,000,000,000 bytes, which the kernel rounds down to whole pages.
check "its cgroup has the default limits (2gb, 128 + bwrap, 1 CPU, group OOM kill)" \
  test "$(cat "$d/memory.max") $(cat "$d/pids.max") $(cat "$d/cpu.max") $(cat "$d/memory.oom.group")" = "1999998976 129 100000 100000 1"
check "bubblewrap and the ParaTime are both in it (bwrap joined before exec)" \
  sh -c "[ \$(wc -l < $d/cgroup.procs) -ge 2 ] && grep -qx $pid $d/cgroup.procs"
check "no per-user RLIMIT_NPROC on it (pids.max counts this sandbox alone): $(grep 'Max processes' /proc/$pid/limits | tr -s ' ')" \
  test "$(grep 'Max processes' /proc/$pid/limits)" = "$(grep 'Max processes' /proc/$launcher/limits)"
check "control status says the kernel enforces the limits" \
  sh -c "paratime-node control status -a unix:$SOCK | grep -q '\"memory\": \"cgroup v2 memory.max' && paratime-node control status -a unix:$SOCK | grep -q '\"cpu\": \"cgroup v2 cpu.max'"

# A memory hog is killed by the kernel at memory.max (128 MB), reported and restarted.
start memory
check "a memory hog is killed at its cgroup's memory.max and restarted" wait_for 120 restarted_for memory memory.max
echo "     $(limit_kills memory | head -1)"
check "the memory hog's old cgroups were removed (at most the current one is left)" \
  test "$(runtime_cgroups @memory)" -le 1
stop memory

# A fork bomb hits pids.max (32 + bwrap) and is killed.
start fork
check "a fork bomb is stopped at its cgroup's pids.max and restarted" wait_for 120 restarted_for fork pids.max
echo "     $(limit_kills fork | head -1)"
if [ "$failed" -gt 0 ]; then
  journalctl -u paratime-node@fork.service -o verbose --no-pager | grep -E '^ *(MESSAGE|ERR)=' | tail -12 | sed 's/^ */     fork: /'
  journalctl -u paratime-node-sandbox@fork.service -o cat --no-pager | tail -8 | sed 's/^/     fork launcher: /'
  grep -H . /sys/fs/cgroup/system.slice/system-paratime*/paratime-node-sandbox@fork.service/runtime-*/pids.* 2>/dev/null | sed 's/^/     /'
fi
stop fork

# Four spinning threads get 0.5 CPU (with less, the debug-built runtime under emulation misses
# its pings and the watchdog restarts it: fine for a node, but it ends the measurement).
start cpu
check "the CPU burner is running" wait_for 120 has_pid cpu
cpu_cg=/sys/fs/cgroup$(cg_of "$(pid_of cpu)")
sleep 2
s0=$(cat "$cpu_cg/cpu.stat"); t0=$(date +%s%N)
sleep 5
s1=$(cat "$cpu_cg/cpu.stat"); t1=$(date +%s%N)
stat() { echo "$1" | sed -n "s/^$2 //p"; }
used=$(( ($(stat "$s1" usage_usec) - $(stat "$s0" usage_usec)) * 1000 / ((t1 - t0) / 1000) ))
throttled=$(( $(stat "$s1" nr_throttled) - $(stat "$s0" nr_throttled) ))
echo "     cpu.max $(cat "$cpu_cg/cpu.max"); used $used thousandths of a CPU over 5 s, throttled in $throttled periods"
check "four spinning threads get at most their quota of 0.5 CPU (+10 %)" test "$used" -le 550
check "the kernel throttled them" test "$throttled" -gt 0
stop cpu

# A ParaTime cannot raise its own limits.
start escape
check "the escape attempt ran" wait_for 120 escape_done
journal_of escape | grep -o 'cgroup_escape [^"]*' | sed 's/^/     /' | head -9
check "the ParaTime could not mount cgroup2 nor write any limit" \
  sh -c "journalctl -u paratime-node@escape.service -o cat --no-pager | grep -q 'cgroup_escape mount: refused' && ! journalctl -u paratime-node@escape.service -o cat --no-pager | grep -q WRITTEN"
esc_cg=/sys/fs/cgroup$(cg_of "$(pid_of escape)")
check "its cgroup's limits are unchanged ($(cat "$esc_cg/memory.max") $(cat "$esc_cg/pids.max") $(cat "$esc_cg/cpu.max"))" \
  test "$(cat "$esc_cg/memory.max") $(cat "$esc_cg/pids.max") $(cat "$esc_cg/cpu.max")" = "256000000 129 100000 100000"

# Metrics under the enforced profile: the /proc figures are read (a denial would drop them
# silently; the denial check below would also see it).
scrape() { bash -c 'exec 3<>/dev/tcp/127.0.0.1/9464 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3'; }
metrics_whole() { scrape | grep -q '^oasis_node_cpu_utime_seconds ' && scrape | grep -q '^oasis_node_disk_read_bytes ' && scrape | grep -q '^paratime_runtime_ready{'; }
check "the confined node serves its CPU, I/O and runtime metrics" wait_for 10 metrics_whole

check "the canonical instance kept serving throughout" is_ready ""
systemctl stop paratime-node.service paratime-node-sandbox.service
check "stopping the units leaves no runtime cgroup" wait_for 20 no_runtime_cgroups ""

check "AppArmor denied nothing to the node, its commands, the launcher or bubblewrap" sh -c "! journalctl -k -o cat --no-pager | grep -q 'apparmor=\"DENIED\"'"
[ "$failed" -eq 0 ] || dump
echo "VM test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
