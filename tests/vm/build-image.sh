#!/usr/bin/env bash
# Build (or reuse) the throw-away VM's kernel and initramfs for tests/vm.
#
#   tests/vm/build-image.sh CACHE_DIR
#
# Prints the kernel and initramfs paths on its last two lines. Everything is
# cached in CACHE_DIR (default ~/.cache/localpasskey-vm), keyed by the Debian
# kernel version and by the hash of this script and tests/vm/init, so reruns
# take no time and a change here rebuilds.
#
# The kernel is Debian's own (apt-get download linux-image-amd64 and the
# linux-image-6.1.0-N-amd64 package it depends on): its config has
# CONFIG_UHID=m, CONFIG_HIDRAW=y and CONFIG_HID_GENERIC=m, which the
# development and CI kernels lack. Only the modules the guest needs are kept
# (hid, uhid, hid-generic, virtio PCI, 9p over virtio and their
# dependencies); the initramfs is busybox-static plus those modules and
# tests/vm/init.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${1:-${LOCALPASSKEY_VM_CACHE:-$HOME/.cache/localpasskey-vm}}
mkdir -p "$CACHE"
log() { printf '[vm-image] %s\n' "$*" >&2; }

# The modules the init script loads (modprobe names); dependencies are added.
MODULES=(virtio_pci 9pnet_virtio 9p hid uhid hid-generic)

# ------------------------------------------------------------------ kernel
# Which kernel package? Ask apt once and remember (the name moves with Debian
# point releases; a cached kernel stays valid until the cache is removed).
if [ ! -s "$CACHE/kernel.version" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    log "downloading Debian's kernel package (linux-image-amd64)"
    (cd "$work" && apt-get download -q linux-image-amd64 >/dev/null 2>&1) || {
        log "apt-get download failed; running apt-get update once"
        apt-get update -q >/dev/null
        (cd "$work" && apt-get download -q linux-image-amd64 >/dev/null)
    }
    dep=$(dpkg-deb -f "$work"/linux-image-amd64_*.deb Depends | sed 's/[ ,].*//')
    log "downloading $dep"
    (cd "$work" && apt-get download -q "$dep" >/dev/null 2>&1)
    rm -rf "$CACHE/kroot"
    mkdir -p "$CACHE/kroot"
    dpkg-deb --fsys-tarfile "$work/${dep}"_*.deb | tar -x -C "$CACHE/kroot" --wildcards \
        './boot/vmlinuz-*' \
        './lib/modules/*/kernel/drivers/hid/hid.ko' \
        './lib/modules/*/kernel/drivers/hid/uhid.ko' \
        './lib/modules/*/kernel/drivers/hid/hid-generic.ko' \
        './lib/modules/*/kernel/drivers/virtio/*' \
        './lib/modules/*/kernel/net/9p/*' \
        './lib/modules/*/kernel/fs/9p/*' \
        './lib/modules/*/kernel/fs/netfs/*' \
        './lib/modules/*/kernel/fs/fscache/*' \
        './lib/modules/*/modules.builtin*' \
        './lib/modules/*/modules.order'
    kver=$(ls "$CACHE/kroot/lib/modules")
    # The package ships no modules.dep (its postinst runs depmod): make it.
    depmod -b "$CACHE/kroot" "$kver"
    cp "$CACHE/kroot/boot/vmlinuz-$kver" "$CACHE/vmlinuz"
    echo "$kver" >"$CACHE/kernel.version"
    rm -rf "$work"
    trap - EXIT
fi
kver=$(cat "$CACHE/kernel.version")

# --------------------------------------------------------------- initramfs
stamp=$(cat "$HERE/build-image.sh" "$HERE/init" /bin/busybox "$CACHE/kernel.version" | sha256sum | cut -c1-16)
initrd="$CACHE/initramfs-$stamp.cpio.gz"
if [ ! -s "$initrd" ]; then
    log "building the initramfs ($kver)"
    rm -f "$CACHE"/initramfs-*.cpio.gz
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work"/{bin,dev,proc,sys,newroot,modules}
    cp /bin/busybox "$work/bin/busybox"
    for applet in sh mount umount mkdir insmod chroot poweroff reboot sleep cat echo ls mknod sync; do
        ln -s busybox "$work/bin/$applet"
    done
    # Dependency order from the host's kmod, so the guest needs only insmod.
    : >"$work/modules/order"
    for m in "${MODULES[@]}"; do
        modprobe -d "$CACHE/kroot" -S "$kver" --show-depends "$m" | while read -r verb path _; do
            [ "$verb" = insmod ] || continue
            name=$(basename "$path")
            if ! grep -qx "$name" "$work/modules/order"; then
                cp "$path" "$work/modules/$name"
                echo "$name" >>"$work/modules/order"
            fi
        done
    done
    cp "$HERE/init" "$work/init"
    chmod 755 "$work/init"
    (cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
    rm -rf "$work"
    trap - EXIT
fi
echo "$CACHE/vmlinuz"
echo "$initrd"
