#!/usr/bin/env bash
# Build (or reuse) the Debian 12 system that tests/system boots: a root file
# system made by mmdebstrap from Debian's packages, as an ext4 image, with the
# kernel and initramfs Debian installed into it.
#
#   tests/system/build-rootfs.sh DEB [CACHE_DIR]
#
# DEB is LocalPasskey's package: its Depends are installed into the image
# too, because the guest has no network and apt must find them there when the
# test installs the package (its Recommends, a pinentry, are left out: apt
# then goes on without them, as it does offline). Prints the kernel, the initramfs
# and the image paths on its last three lines.
#
# Cached in CACHE_DIR/system (CACHE_DIR defaults to the VM harness's cache,
# ~/.cache/localpasskey-vm), keyed by the package list and by this script and
# rootfs-setup.sh: a rerun costs nothing, a new package rebuilds (~5 min). The
# image is never written to: each run boots a copy-on-write overlay of it.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEB=$(realpath "$1")
CACHE=${2:-${LOCALPASSKEY_VM_CACHE:-$HOME/.cache/localpasskey-vm}}/system
log() { printf '[system-image] %s\n' "$*" >&2; }
mkdir -p "$CACHE"

# The key: our package list and the scripts that make the image. The .deb's
# dependencies (first alternative of each, without versions) must be
# installed in it too: an image that lacks one is built again with it.
mapfile -t base < <(sed 's/#.*//' "$HERE/packages" | tr -s ' \t' '\n' | sed '/^$/d' | sort -u)
mapfile -t deps < <(dpkg-deb -f "$DEB" Depends | tr ',' '\n' |
    sed 's/|.*//; s/(.*)//; s/:any//; s/[[:space:]]//g' | sed '/^$/d' | sort -u)
key=$( (printf '%s\n' "${base[@]}"; cat "$HERE/build-rootfs.sh" "$HERE/rootfs-setup.sh") | sha256sum | cut -c1-16)
img="$CACHE/rootfs-$key.img"
manifest="$CACHE/rootfs-$key.packages"
missing=()
for d in "${deps[@]}"; do
    grep -qx "$d" "$manifest" 2>/dev/null || missing+=("$d")
done
mapfile -t pkgs < <(printf '%s\n' "${base[@]}" "${deps[@]}" | sort -u)
if [ -s "$img" ] && [ -s "$CACHE/vmlinuz-$key" ] && [ -s "$CACHE/initrd-$key" ] && [ "${#missing[@]}" -eq 0 ]; then
    log "cached: $img"
else
    log "building the Debian 12 image $key (${#pkgs[@]} packages and their dependencies${missing:+; the package needs ${missing[*]}})"
    start=$SECONDS
    rm -f "$CACHE"/rootfs-*.img "$CACHE"/rootfs-*.packages "$CACHE"/vmlinuz-* "$CACHE"/initrd-*
    work=$(mktemp -d "$CACHE/build.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    # --variant=apt: Essential packages and apt, then only what we name.
    # Documentation and translations are left out of the image (smaller,
    # quicker to build); dpkg's unsafe-io: a throw-away tree needs no fsync.
    mmdebstrap --variant=apt --quiet \
        --include="$(IFS=,; echo "${pkgs[*]}")" \
        --dpkgopt=force-unsafe-io \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --customize-hook="\"$HERE/rootfs-setup.sh\" \"\$1\"" \
        bookworm "$work/root" >&2
    chroot "$work/root" dpkg-query -W -f='${Package}\n' | sort >"$work/packages"
    cp "$(ls "$work"/root/boot/vmlinuz-* | tail -n 1)" "$work/vmlinuz"
    cp "$(ls "$work"/root/boot/initrd.img-* | tail -n 1)" "$work/initrd"
    # An ext4 image made from the tree without mounting anything; sparse, so
    # its 4 GiB cost only what the files need.
    truncate -s 4G "$work/rootfs.img"
    mke2fs -q -t ext4 -L lpk-root -d "$work/root" "$work/rootfs.img"
    mv "$work/vmlinuz" "$CACHE/vmlinuz-$key"
    mv "$work/initrd" "$CACHE/initrd-$key"
    mv "$work/rootfs.img" "$img"
    mv "$work/packages" "$manifest"
    rm -rf "$work"
    trap - EXIT
    log "built in $((SECONDS - start)) s: $img ($(du -h "$img" | cut -f1) used)"
fi
echo "$CACHE/vmlinuz-$key"
echo "$CACHE/initrd-$key"
echo "$img"
