#!/usr/bin/env bash
# One command: install what is needed, build, and run the authenticator on the
# best backend this machine has. Extra arguments go to `localpasskey run`.
#
# Today that is always the UDP simulation transport with the INSECURE software
# key custody: TPM custody and the uhid (real USB HID) transport are the next
# milestones. The daemon's first log lines say which backend is in use.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust with rustup (https://rustup.rs) and run this again" >&2
  exit 1
fi
if ! command -v cc >/dev/null 2>&1; then
  echo "installing a C compiler (needed to build SQLite)…" >&2
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y --no-install-recommends build-essential pkg-config
  else sudo apt-get update -qq && sudo apt-get install -y --no-install-recommends build-essential pkg-config; fi
fi

cargo build --release --locked -p localpasskey
bin=target/release/localpasskey

echo "Backend: UDP simulation transport on 127.0.0.1:8111 with INSECURE software keys" >&2
echo "         (no TPM custody and no uhid device yet; see README 'What is protected today')" >&2
exec "$bin" run --transport udp --custody auto --presence approve "$@"
