#!/usr/bin/env bash
# VM test: per-runtime cgroups under the shipped units, on a cgroup v2 kernel.
#
# The hosts here run cgroup v1 (hybrid: the unified hierarchy has no controllers), and a container
# shares its host's kernel, so systemd-nspawn cannot show what the sandbox unit does with
# Delegate=. This test boots Debian trixie's own kernel (6.12, cgroup v2 with cpu, memory and
# pids) in QEMU with the cached system-test rootfs as its root (9p), installs the product as
# system-test.sh does, runs tests/systemd/vm-checks.sh in the booted system and reads back its
# results. QEMU emulates the CPU (TCG): this machine's nested KVM creates a VM but fails at the
# guest kernel's first emulated instruction. Prints one line per check and "N passed, M failed".
#
#   tests/systemd/vm-test.sh    (root; PARATIME_NODE_BIN / PARATIME_KVSTORE_BIN /
#                                PARATIME_HOSTILE_BIN default to target/debug)
# The VM's rootfs (the system test's plus linux-image-amd64) is cached in
# $PARATIME_ROOTFS_CACHE/vm (default /var/cache/paratime-node-test/vm).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
. "$TOP/tests/systemd/lib.sh"
product_paths

[ "$(id -u)" -eq 0 ] || { echo "the VM test needs root (chroot, 9p passthrough)"; exit 1; }
for tool in debootstrap qemu-system-x86_64; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install debootstrap qemu-system-x86"; exit 1; }
done
ensure_rootfs

# 1. The VM's rootfs: trixie's kernel, with the 9p modules in its initramfs (root is a 9p share).
if ! ls "$CACHE"/vm/boot/vmlinuz-* >/dev/null 2>&1; then
  rm -rf "$CACHE/vm.tmp"
  cp -a "$ROOTFS" "$CACHE/vm.tmp"
  mount --bind /proc "$CACHE/vm.tmp/proc"
  mount --bind /dev "$CACHE/vm.tmp/dev"
  built=0
  if chroot "$CACHE/vm.tmp" sh -c 'export DEBIAN_FRONTEND=noninteractive
      apt-get update -q && apt-get install -y -q --no-install-recommends linux-image-amd64 &&
      printf "9p\n9pnet\n9pnet_virtio\nnetfs\nvirtio_pci\n" >> /etc/initramfs-tools/modules &&
      update-initramfs -u -k all && apt-get clean' >"$CACHE/vm-kernel.log" 2>&1; then
    built=1
  fi
  umount "$CACHE/vm.tmp/proc" "$CACHE/vm.tmp/dev"
  [ "$built" = 1 ] || { tail -20 "$CACHE/vm-kernel.log"; exit 1; }
  echo paratime-vm > "$CACHE/vm.tmp/etc/hostname"
  mv "$CACHE/vm.tmp" "$CACHE/vm"
fi

WORK=$(mktemp -d /var/tmp/paratime-vmtest.XXXXXX)
R=$WORK/root
cleanup() { if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
cp -a "$CACHE/vm" "$R"
mkdir -p "$R/var/log/journal"  # persistent: readable after the run with journalctl -D

# 2. The product, a canonical instance and one instance per attack (template units).
install_product "$R"
# trixie's kernel enforces AppArmor: the shipped profiles are loaded at boot (apparmor.service).
install_hostile "$R" memory 9401 memory "    memory: 128mb"
install_hostile "$R" fork 9402 fork_bomb "    pids: 32"
install_hostile "$R" cpu 9403 cpu_burn "    cpu: 0.5"
install_hostile "$R" escape 9404 cgroup_escape "    memory: 256mb"
install -m 0644 "$TOP/tests/systemd/lib.sh" "$R/usr/local/lib/paratime-lib.sh"
install -m 0755 "$TOP/tests/systemd/vm-checks.sh" "$R/usr/local/lib/paratime-vm-checks.sh"
cat > "$R/etc/systemd/system/paratime-vm-checks.service" <<'UNIT'
[Unit]
Description=paratime-node VM checks
After=multi-user.target

[Service]
Type=oneshot
Environment=RID=0000000000000000000000000000000000000000000000000000000000000001
ExecStart=/bin/sh -c '/usr/local/lib/paratime-vm-checks.sh > /var/tmp/vm-checks.out 2>&1; echo "exit $?" >> /var/tmp/vm-checks.out; systemctl poweroff --no-block'
UNIT
mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/paratime-vm-checks.service "$R/etc/systemd/system/multi-user.target.wants/"

# 3. Boot; the checks power the VM off when done.
kernel=$(ls "$R"/boot/vmlinuz-* | head -1)
initrd=$(ls "$R"/boot/initrd.img-* | head -1)
started=$(date +%s)
timeout "${VM_TIMEOUT:-900}" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m 4096 \
  -nographic -no-reboot -nic none \
  -kernel "$kernel" -initrd "$initrd" \
  -append "root=rootfs rootfstype=9p rootflags=trans=virtio,version=9p2000.L,msize=262144 rw console=ttyS0 panic=-1 quiet" \
  -fsdev "local,id=root,path=$R,security_model=passthrough" \
  -device virtio-9p-pci,fsdev=root,mount_tag=rootfs \
  </dev/null >"$WORK/console.log" 2>&1 || echo "qemu exited with $? after $(( $(date +%s) - started )) s"
echo "     VM ran $(( $(date +%s) - started )) s"
if [ ! -s "$R/var/tmp/vm-checks.out" ]; then
  echo "FAIL the checks did not run in the VM; console:"
  tail -40 "$WORK/console.log"
  exit 1
fi
cat "$R/var/tmp/vm-checks.out"
if ! grep -q '^exit 0$' "$R/var/tmp/vm-checks.out"; then
  echo "---- VM console (last 40 lines)"
  tail -40 "$WORK/console.log" | tr -d '\033' | cut -c1-300
  exit 1
fi
