#!/usr/bin/env bash
# Fetch python-fido2's own device test suite (the `tests/device` folder of its
# source distribution, with the conftest above it) into a cache directory:
#
#   tests/device-suite/fetch.sh        # prints the suite's directory
#
# The sdist comes from PyPI through .venv's pip, pinned by version and hash;
# nothing else is downloaded, and a second run only checks what is there.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)

VERSION=2.2.1
SHA256=85787428a94c3f8eaf72f0ff30afba983b559a1b1b795c93318c81b4ad4062c4
CACHE=${LPK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/localpasskey}
DEST="$CACHE/fido2-device-suite-$VERSION"
SDIST="$CACHE/fido2-$VERSION.tar.gz"

if [ -f "$DEST/tests/device/conftest.py" ] && [ -f "$DEST/tests/conftest.py" ]; then
    echo "$DEST"
    exit 0
fi

mkdir -p "$CACHE"
if ! echo "$SHA256  $SDIST" | sha256sum -c --status 2>/dev/null; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "fido2==$VERSION --hash=sha256:$SHA256" >"$tmp/req.txt"
    "$ROOT/.venv/bin/python" -m pip download -q --disable-pip-version-check \
        --no-binary :all: --no-deps --require-hashes -r "$tmp/req.txt" -d "$tmp" >&2
    mv "$tmp/fido2-$VERSION.tar.gz" "$SDIST"
fi
echo "$SHA256  $SDIST" | sha256sum -c --status || { echo "error: $SDIST: wrong SHA-256" >&2; exit 1; }

rm -rf "$DEST.part"
mkdir -p "$DEST.part"
tar -xzf "$SDIST" -C "$DEST.part" --strip-components=1 \
    "fido2-$VERSION/tests/__init__.py" "fido2-$VERSION/tests/conftest.py" "fido2-$VERSION/tests/device" \
    "fido2-$VERSION/COPYING"
rm -rf "$DEST"
mv "$DEST.part" "$DEST"
echo "$DEST"
