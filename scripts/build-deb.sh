#!/usr/bin/env bash
# Build the Debian package of LocalPasskey (daemon, desktop dialog, the
# manager app with its .desktop file and icon, uhid broker, systemd units, udev rules, modules-load file, maintainer scripts;
# docs/setup.md):
#
#   scripts/build-deb.sh        # prints the path of the .deb on its last line
#
# LOCALPASSKEY_DEB_PROFILE=dev packages the debug build instead (the same
# files; what scripts/test.sh has already built, so the system test does not
# compile everything a second time).
#
# cargo-deb (a pinned version) is installed with `cargo install` the first time. The package
# description is [package.metadata.deb] in crates/localpasskey/Cargo.toml;
# the files it ships are in packaging/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
log() { printf '==> %s\n' "$*" >&2; }

# Pinned: cargo-deb warns that packaging the dev profile will become an
# error, and a fresh machine must get the version this script was tested with.
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
    log "installing cargo-deb $CARGO_DEB_VERSION (cargo install --locked)"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi
PROFILE=${LOCALPASSKEY_DEB_PROFILE:-release}
log "building the binaries ($PROFILE profile)"
if [ "$PROFILE" = dev ]; then
    # What scripts/test.sh builds: the same features, so nothing compiles again.
    cargo build --workspace --bins >&2
else
    cargo build --profile "$PROFILE" --locked -p localpasskey -p localpasskey-prompt -p localpasskey-manager \
        -p localpasskey-broker >&2
fi
log "packaging"
# The test package (dev) is installed once and thrown away: faster, lighter
# compression (measured: 11 s instead of 34 s, 8.8 MB instead of 7.0 MB).
fast=()
[ "$PROFILE" = dev ] && fast=(--fast)
out=$(cargo deb -p localpasskey --no-build --strip --profile "$PROFILE" "${fast[@]}" 2>&1 | tee /dev/stderr | tail -n 1)
[ -f "$out" ] || { echo "cargo deb made no package: $out" >&2; exit 1; }
echo "$out"
