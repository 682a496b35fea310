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
# a real /dev/tpmrm0. qemu runs under TCG (FACTS.md: no KVM here). A second
# disk is the guest's swap: when it hibernates and powers off, swtpm and qemu
# are started again on the same state and disks, as a laptop is switched on.
#
# Results in test-output/system/ (guest.log, console.log, the transcripts);
# the last line printed is "system: N passed, M failed".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${LOCALPASSKEY_VM_CACHE:-$HOME/.cache/localpasskey-vm}
OUT="$ROOT/test-output/system"
VM_TIMEOUT=${LOCALPASSKEY_SYSTEM_TIMEOUT:-1200}
start=$SECONDS

for tool in qemu-system-x86_64 qemu-img swtpm mmdebstrap mke2fs mkswap; do
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
mkdir -p "$OUT/in/py" "$OUT/in/rp-py"
cp "$DEB" "$OUT/in/localpasskey.deb"
SITE=$(dirname "$FIDO2")
cp -r "$FIDO2" "$SITE/websocket" "$OUT/in/py/"
# The demo relying party's py_webauthn and what it needs (it wants a newer
# cryptography than Debian 12's), for the Chromium checks; the same Python
# 3.11 and glibc as this machine, so the venv's wheels run there as they are.
for m in webauthn cbor2 OpenSSL pyasn1 pyasn1_modules cryptography cffi pycparser typing_extensions.py \
    _cffi_backend.cpython-311-x86_64-linux-gnu.so; do
    [ -e "$SITE/$m" ] || { echo "system: no $m in .venv (scripts/install-deps.sh)"; echo "system: 0 passed, 1 failed"; exit 1; }
    cp -r "$SITE/$m" "$OUT/in/rp-py/"
done
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
# The swap the guest hibernates to: a second disk, fresh at each run. Made a
# swap area here: a blank disk would make the initramfs wait 30 s at every
# boot for the resume device to get a file system.
truncate -s 2G "$RUN/swap.img"
mkswap -q -L lpk-swap "$RUN/swap.img"

# The TPM: swtpm keeps its state in $RUN/tpm across the guest's reboot and
# suspend, like a laptop's TPM. When the guest hibernates and powers off,
# the swtpm process is stopped and a new one started on the same state: its
# volatile state is lost as a powered-off TPM's is, and the firmware's
# TPM2_Startup(CLEAR) at the next start makes it a TPM Reset.
start_swtpm() {
    rm -f "$RUN/tpm.sock"
    swtpm socket --tpm2 --tpmstate dir="$RUN/tpm" --ctrl type=unixio,path="$RUN/tpm.sock" \
        --log file="$OUT/swtpm.log",level=1 &
    SWTPM_PID=$!
    for _ in $(seq 100); do [ -S "$RUN/tpm.sock" ] && break; sleep 0.05; done
}
mkdir -p "$RUN/tpm"
start_swtpm

boot=$SECONDS
rc=0
restarts=0
: >"$OUT/console.log"
while :; do
    python3 "$HERE/qmp_wake.py" "$RUN/qmp.sock" "$OUT/power-events.log" &
    QMP_PID=$!
    rc=0
    # -cpu max: free under TCG, gives the guest the host's crypto instructions.
    # -vga std: a DRM card and real virtual consoles (chvt, the seat's devices).
    # No floppy driver: probing the emulated drive costs up to 40 s under TCG.
    # The console is appended to, so a restarted qemu adds to the record.
    timeout --foreground "$((VM_TIMEOUT - (SECONDS - boot)))" nice -n 10 qemu-system-x86_64 \
        -accel tcg,thread=multi -cpu max -smp 2 -m 1536 \
        -kernel "$KERNEL" -initrd "$INITRD" \
        -append "root=/dev/vda rw resume=/dev/vdb console=tty0 console=ttyS0 quiet loglevel=4 modprobe.blacklist=floppy" \
        -drive "file=$RUN/disk.qcow2,if=none,id=root,format=qcow2,cache=unsafe" \
        -device virtio-blk-pci,drive=root,serial=lpk-root \
        -drive "file=$RUN/swap.img,if=none,id=swap,format=raw,cache=unsafe" \
        -device virtio-blk-pci,drive=swap,serial=lpk-swap \
        -chardev "socket,id=chrtpm,path=$RUN/tpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
        -device tpm-tis,tpmdev=tpm0 \
        -virtfs "local,path=$ROOT,mount_tag=src,security_model=none,readonly=on,multidevs=remap" \
        -virtfs "local,path=$OUT,mount_tag=out,security_model=none,multidevs=remap" \
        -nic none -vga std -display none -monitor none \
        -chardev "file,id=console,path=$OUT/console.log,append=on" -serial chardev:console \
        -qmp "unix:$RUN/qmp.sock,server=on,wait=off" \
        </dev/null >>"$OUT/qemu.log" 2>&1 || rc=$?
    wait "$QMP_PID" || true
    echo "system: qemu exited with status $rc after $((SECONDS - boot))s (whole run $((SECONDS - start))s)"
    [ "$rc" -eq 124 ] && { echo "system: TIMED OUT after ${VM_TIMEOUT}s"; break; }
    # A guest that hibernated left its image on the swap disk, whose
    # signature (the last ten bytes of its first page) then reads S1SUSPEND
    # instead of SWAPSPACE2: then the laptop is switched on again. The
    # guest's "hibernating" line on the console cannot be the sign: it goes
    # through journald, which the kernel may freeze before it writes it.
    sig=$(dd if="$RUN/swap.img" bs=1 skip=4086 count=10 status=none | tr -d '\0')
    said=$(tr -d '\r' <"$OUT/console.log" | grep -c '\[system\] hibernating: power off$' || true)
    echo "system: swap signature after this run: $sig (the console says hibernating $said time(s))"
    [ "$rc" -eq 0 ] && [ "$sig" = S1SUSPEND ] && [ "$restarts" -lt 2 ] &&
        [ "$((VM_TIMEOUT - (SECONDS - boot)))" -gt 60 ] || break
    restarts=$((restarts + 1))
    echo "$restarts" >"$OUT/qemu-restarts"
    kill "$SWTPM_PID" 2>/dev/null || true
    wait "$SWTPM_PID" 2>/dev/null || true
    start_swtpm
    echo "system: the guest hibernated and powered off; swtpm and qemu started again on the same state and disks"
done
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
if [ "$failed" -gt 0 ]; then
    # The guest's record may stop short of why; the console has the kernel's
    # and the initramfs' side of every boot, the resumes included.
    echo "system: the console's power and resume lines:"
    tr -d '\r' <"$OUT/console.log" | grep -iE 'PM: |hibernat|resume|\[system\] (boot|FAIL)|Kernel panic|Oops' |
        tail -n 30 | cut -c1-300 || true
fi
[ "$blocked" -gt 0 ] && echo "system: $blocked BLOCKED (not counted as passed)"
echo "system: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
