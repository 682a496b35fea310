#!/usr/bin/env bash
# The full-system test: a booted Debian 12 with systemd, udev, logind and a
# user logged in on tty1, where LocalPasskey is installed from its package
# the way the README says, the machine rebooted, and everything checked as
# that user (tests/system/guest.py says what).
#
#   tests/system/run.sh [DEB]     (DEB: the package; default: scripts/build-deb.sh)
#
# The image (build-rootfs.sh) is cached next to tests/vm's kernel in
# $LOCALPASSKEY_VM_CACHE (default ~/.cache/localpasskey-vm); each run boots a
# throw-away overlay of it, so every run starts from the same fresh system.
# The TPM is swtpm on this machine behind qemu's tpm-tis device: the guest has
# a real /dev/tpmrm0. qemu runs under TCG (FACTS.md: no KVM here).
#
# Results in test-output/system/ (guest.log, console.log, the transcripts);
# the last line printed is "system: N passed, M failed".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${LOCALPASSKEY_VM_CACHE:-$HOME/.cache/localpasskey-vm}
OUT="$ROOT/test-output/system"
VM_TIMEOUT=${LOCALPASSKEY_SYSTEM_TIMEOUT:-900}
start=$SECONDS

for tool in qemu-system-x86_64 qemu-img swtpm mmdebstrap mke2fs; do
    command -v "$tool" >/dev/null || { echo "system: $tool missing (scripts/install-deps.sh installs it)"; echo "system: 0 passed, 1 failed"; exit 1; }
done
# python-fido2 for the guest: the pure-Python package of our venv (the
# guest's python3-cryptography serves it).
FIDO2=$(ls -d "$ROOT"/.venv/lib/python3*/site-packages/fido2 2>/dev/null | head -n 1 || true)
[ -n "$FIDO2" ] || { echo "system: no fido2 in .venv (scripts/install-deps.sh makes it)"; echo "system: 0 passed, 1 failed"; exit 1; }

DEB=${1:-}
if [ -z "$DEB" ]; then
    DEB=$("$ROOT/scripts/build-deb.sh" | tail -n 1)
fi
DEB=$(realpath "$DEB")
echo "system: package $DEB"

mapfile -t image < <(nice -n 10 "$HERE/build-rootfs.sh" "$DEB" "$CACHE" | tail -n 3)
KERNEL=${image[0]} INITRD=${image[1]} IMAGE=${image[2]}
echo "system: image $IMAGE ($((SECONDS - start))s)"

rm -rf "$OUT"
mkdir -p "$OUT/in/py"
cp "$DEB" "$OUT/in/localpasskey.deb"
cp -r "$FIDO2" "$OUT/in/py/"
# Sockets and the disk overlay in a private directory (socket paths must be
# short; the overlay is thrown away).
RUN=$(mktemp -d /tmp/lpk-system.XXXXXX)
SWTPM_PID=
cleanup() {
    [ -n "$SWTPM_PID" ] && kill "$SWTPM_PID" 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT
qemu-img create -q -f qcow2 -F raw -b "$IMAGE" "$RUN/disk.qcow2"

# The TPM: one swtpm for the whole run, so it keeps its state across the
# guest's reboot and suspend like a laptop's TPM.
mkdir -p "$RUN/tpm"
swtpm socket --tpm2 --tpmstate dir="$RUN/tpm" --ctrl type=unixio,path="$RUN/tpm.sock" \
    --log file="$OUT/swtpm.log",level=1 &
SWTPM_PID=$!
for _ in $(seq 100); do [ -S "$RUN/tpm.sock" ] && break; sleep 0.05; done

python3 "$HERE/qmp_wake.py" "$RUN/qmp.sock" "$OUT/power-events.log" &
QMP_PID=$!
boot=$SECONDS
rc=0
# -cpu max: free under TCG, gives the guest the host's crypto instructions.
# -vga std: a DRM card and real virtual consoles (chvt, the seat's devices).
# No floppy driver: probing the emulated drive costs up to 40 s under TCG.
timeout --foreground "$VM_TIMEOUT" nice -n 10 qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp 2 -m 1536 \
    -kernel "$KERNEL" -initrd "$INITRD" \
    -append "root=/dev/vda rw console=tty0 console=ttyS0 quiet loglevel=4 modprobe.blacklist=floppy" \
    -drive "file=$RUN/disk.qcow2,if=virtio,format=qcow2,cache=unsafe" \
    -chardev "socket,id=chrtpm,path=$RUN/tpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
    -device tpm-tis,tpmdev=tpm0 \
    -virtfs "local,path=$ROOT,mount_tag=src,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$OUT,mount_tag=out,security_model=none,multidevs=remap" \
    -nic none -vga std -display none -monitor none \
    -serial "file:$OUT/console.log" -qmp "unix:$RUN/qmp.sock,server=on,wait=off" \
    </dev/null >"$OUT/qemu.log" 2>&1 || rc=$?
wait "$QMP_PID" || true
echo "system: qemu exited with status $rc after $((SECONDS - boot))s (whole run $((SECONDS - start))s)"
[ "$rc" -eq 124 ] && echo "system: TIMED OUT after ${VM_TIMEOUT}s"
sed -n 's/^.*\(SUSPEND\|WAKEUP\|RESET\|SHUTDOWN\|system_wakeup sent\)$/power: &/p' "$OUT/power-events.log" 2>/dev/null || true

# The console is the record (it survives a guest whose 9p share broke).
# (journald prefixes each line with the time and the process).
tr -d '\r' <"$OUT/console.log" | sed -n 's/^.*\[system\] //p' >"$OUT/results.txt" || true
cat "$OUT/results.txt"
passed=$(grep -c '^PASS ' "$OUT/results.txt" || true)
failed=$(grep -c '^FAIL ' "$OUT/results.txt" || true)
blocked=$(grep -c '^BLOCKED ' "$OUT/results.txt" || true)
finished=$(grep -c '^finished' "$OUT/results.txt" || true)
if [ "$finished" -eq 0 ]; then
    echo "system: the guest did not finish; console tail:"
    tail -n 30 "$OUT/console.log" | tr -d '\r'
    failed=$((failed + 1))
fi
[ "$blocked" -gt 0 ] && echo "system: $blocked BLOCKED (not counted as passed)"
echo "system: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
