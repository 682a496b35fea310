#!/usr/bin/env bash
# The VM test harness: a real kernel HID device for the real clients.
#
#   tests/vm/run.sh [BIN]      (BIN: the localpasskey binary; default target/debug)
#
# The development and CI kernels have no uhid, so this boots Debian's own
# kernel in a throw-away qemu VM (TCG only: never KVM), whose root is this
# machine's / mounted read-only over 9p. Inside, tests/vm/guest_tests.py starts
# swtpm and `localpasskey run --transport uhid`, then drives /dev/hidrawN with
# libfido2's fido2-token/fido2-cred/fido2-assert, OpenSSH's ssh-keygen and
# python-fido2. Results land in test-output/vm/ (summary.txt, daemon.log, the
# guest console in console.log) and the last line printed is
# "vm: N passed, M failed".
#
# Kernel and initramfs are cached in $LOCALPASSKEY_VM_CACHE
# (default ~/.cache/localpasskey-vm): a rerun spends its time in the guest.
#
# The same VM runs other guest suites: LOCALPASSKEY_VM_NAME (default vm: the
# output folder test-output/NAME and the "NAME: N passed, M failed" line),
# LOCALPASSKEY_VM_GUEST (default guest_tests.py, a script in tests/vm) and
# LOCALPASSKEY_VM_MEM (MiB, default 1024), and LOCALPASSKEY_VM_ENV, the names
# of variables handed to the guest suite. tests/vm/browser.sh and
# tests/vm/e2e.sh use them.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$(realpath "${1:-$ROOT/target/debug/localpasskey}")
CACHE=${LOCALPASSKEY_VM_CACHE:-$HOME/.cache/localpasskey-vm}
NAME=${LOCALPASSKEY_VM_NAME:-vm}
GUEST=${LOCALPASSKEY_VM_GUEST:-guest_tests.py}
MEM=${LOCALPASSKEY_VM_MEM:-1024}
OUT="$ROOT/test-output/$NAME"
VM_TIMEOUT=${LOCALPASSKEY_VM_TIMEOUT:-240}

[ -x "$BIN" ] || { echo "vm: no daemon binary at $BIN" >&2; exit 1; }
for tool in qemu-system-x86_64 fido2-token ssh-keygen swtpm busybox; do
    command -v "$tool" >/dev/null || { echo "vm: $tool missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || { echo "vm: no $PY (scripts/install-deps.sh makes it)" >&2; exit 1; }

start=$SECONDS
mapfile -t image < <("$HERE/build-image.sh" "$CACHE" | tail -n 2)
KERNEL=${image[0]}
INITRD=${image[1]}
echo "vm: kernel $KERNEL, initramfs $INITRD ($((SECONDS - start))s)"

rm -rf "$OUT"
mkdir -p "$OUT"
# The guest runs this inside the chroot (the host's tree, read-only).
cat >"$OUT/job.sh" <<JOB
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp/home LANG=C.UTF-8 TERM=dumb
mkdir -p \$HOME
busybox ip link set lo up 2>/dev/null || ip link set lo up
cd "$ROOT"
$(for v in ${LOCALPASSKEY_VM_ENV:-}; do [ -n "${!v:-}" ] && printf "export %s='%s'\n" "$v" "$(printf %s "${!v}" | sed "s/'/'\\\\''/g")"; done)
"$PY" "$HERE/$GUEST" --bin "$BIN" --out /tmp/results >/tmp/results/guest.log 2>&1
echo \$? >/tmp/results/exit-status
JOB

# Paths the job needs that live under the host's /tmp (the guest's own /tmp
# hides it): the guest's init binds their top-level folders back into place.
expose=""
for p in "$ROOT" "$BIN" "$PY" "$HERE"; do
    case "$p" in
    /tmp/?*)
        top=/tmp/$(echo "${p#/tmp/}" | cut -d/ -f1)
        case " $expose " in *" lp_expose=$top "*) ;; *) expose="$expose lp_expose=$top" ;; esac
        ;;
    esac
done

boot=$SECONDS
rc=0
# -cpu max: under TCG it costs nothing and gives the guest the host's crypto
# instructions. -accel tcg only: FACTS.md, KVM cannot run this kernel here.
timeout --foreground "$VM_TIMEOUT" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp 2 -m "$MEM" \
    -nic none -nographic -no-reboot -monitor none -serial stdio \
    -kernel "$KERNEL" -initrd "$INITRD" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init$expose" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$OUT,mount_tag=results,security_model=none,multidevs=remap" \
    </dev/null >"$OUT/console.log" 2>&1 || rc=$?
sed -n '/^\[vm-init\]/p' "$OUT/console.log"
if [ -s "$OUT/guest.log" ]; then
    cat "$OUT/guest.log"
else
    echo "vm: the guest wrote no log; console:"
    tail -n 40 "$OUT/console.log"
fi
echo "vm: qemu exited with status $rc after $((SECONDS - boot))s (whole run $((SECONDS - start))s)"
if [ "$rc" -eq 124 ]; then
    echo "vm: TIMED OUT after ${VM_TIMEOUT}s"
fi
status=$(cat "$OUT/exit-status" 2>/dev/null || echo missing)
# The counts once more as the very last line.
counts=$(grep -E "^$NAME: [0-9]+ passed, [0-9]+ failed\$" "$OUT/guest.log" 2>/dev/null | tail -n 1 || true)
if [ "$status" != 0 ]; then
    echo "vm: guest test status $status"
    echo "${counts:-$NAME: 0 passed, 1 failed}"
    exit 1
fi
echo "$counts"
