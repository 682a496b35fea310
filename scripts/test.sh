#!/usr/bin/env bash
# The one command that runs every test of LocalPasskey (README and CI call it):
#
#   scripts/test.sh
#
# 1. installs what is missing (scripts/install-deps.sh)
# 2. cargo fmt --check, cargo clippy -D warnings, cargo test
# 3. cargo build, then the end-to-end suite (tests/e2e, python-fido2 against the
#    real daemon over the UDP simulation transport; every daemon test runs once
#    with TPM custody, each with its own swtpm, and once with the insecure
#    software custody), on E2E_WORKERS pytest-xdist workers (default 2);
#    then python-fido2's own device suite (tests/device-suite) over the same
#    transport, once per custody
# 4. the desktop prompt (tests/desktop): the real GTK dialog on a private Xvfb,
#    driven with the keyboard by xdotool, alone and behind the daemon;
#    screenshots in test-output/prompt-*.png; then the manager app
#    (tests/manager) on its own session bus and accessibility bus, driven
#    through AT-SPI against the real daemon; screenshots in test-output/manager/
# 5. the VM suite (tests/vm): the daemon as a real USB HID device through uhid
#    in a throw-away qemu VM, driven by libfido2, OpenSSH and python-fido2;
#    then the end-to-end suite's protocol files over /dev/hidrawN in such a VM
#    (tests/vm/e2e.sh; LPK_E2E_FULL=1 for all of it)
# 5b. the full-system test (tests/system, ~6-7 min; the Debian 12 image is
#    built once, 2-7.5 min, and cached): a booted Debian 12 with systemd, logind and a
#    user logged in on tty1 installs the package (packaged from the debug
#    build), reboots, and checks the broker, the service, udev, the clients
#    (headless Chromium on the demo relying party among them), a second user
#    on the seat, doctor, the refused software TPM, suspend/resume,
#    hibernation and the uninstall; 6. and 7. run beside it
# 6. the crash soak (SIGKILL at random moments, SOAK_KILLS, default 25) and the
#    two-channel soak (tests/soak)
# 7. a short fuzz run of every cargo-fuzz target (FUZZ_SECONDS each, default 10)
# (6. and 7. run in the background, one after another at low priority, while
# the system test's VM runs; each one's output is printed and its result and
# time recorded when that step is done)
# 8. the browser suite (tests/vm/browser.sh, ~5 min): headless Chromium and
#    headless Firefox ESR in the same kind of VM registering and signing in
#    on the demo relying party (rp/). FIREFOX_TESTS=0 leaves Firefox out;
#    BROWSER_TESTS=0 leaves the step out (reported as SKIPPED, so the run
#    does not count as passed).
#
# Every step runs even when an earlier one failed (the end-to-end suite needs
# the build), a summary is printed at the end, and the exit status is non-zero
# if anything failed. Extra arguments go to pytest (e.g. `-k crash -x`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

STEPS=()
LOGS=()
STEP_LOGS="$ROOT/test-output/steps"
rm -rf "$STEP_LOGS"
RESULTS=()
TIMES=()
FAILED=0

# run_step NAME COMMAND...: run, time and record one step.
run_step() {
    local name=$1
    shift
    printf '\n======== %s ========\n' "$name"
    printf '$ %s\n' "$*"
    local start=$SECONDS rc=0 log tee_pid n
    mkdir -p "$STEP_LOGS"
    log="$STEP_LOGS/$(printf '%02d' "${#STEPS[@]}").log"
    # Kept aside as well as printed: the summary quotes a failed step's own
    # words, since the end of a long log is what a reader gets to see. Not a
    # pipe the step ends in: a process it left behind holding the output
    # would keep that open; tee gets 5 s to drain, then the run goes on.
    exec 3> >(exec tee "$log")
    tee_pid=$!
    "$@" >&3 2>&1 3>&- || rc=$?
    exec 3>&-
    for n in $(seq 50); do kill -0 "$tee_pid" 2>/dev/null || break; sleep 0.1; done
    STEPS+=("$name")
    LOGS+=("$log")
    TIMES+=("$((SECONDS - start))s")
    if [ "$rc" -eq 0 ]; then
        RESULTS+=("ok")
    else
        RESULTS+=("FAILED (exit $rc)")
        FAILED=1
    fi
    return "$rc"
}

# Steps that leave a core idle run in the background beside one that keeps
# about one busy (a TCG VM): bg_start NAME FUNCTION [NAME FUNCTION]... runs
# the functions one after another at low priority, each output kept aside;
# bg_finish waits, prints each output and records each step, its result and
# its own wall-clock time as run_step would.
bg_start() {
    BG_DIR="$ROOT/test-output/background"
    rm -rf "$BG_DIR"
    mkdir -p "$BG_DIR"
    BG_STEPS=()
    local args=("$@") i
    for ((i = 0; i < ${#args[@]}; i += 2)); do
        BG_STEPS+=("${args[i]}")
        printf '\n======== %s (in the background) ========\n$ %s\n' "${args[i]}" "${args[i + 1]}"
    done
    (
        renice -n 15 -p "$BASHPID" >/dev/null 2>&1 || true
        for ((i = 0; i < ${#args[@]}; i += 2)); do
            n=$((i / 2))
            date +%s >"$BG_DIR/$n.start"
            rc=0
            "${args[i + 1]}" >"$BG_DIR/$n.log" 2>&1 </dev/null || rc=$?
            date +%s >"$BG_DIR/$n.end"
            echo "$rc" >"$BG_DIR/$n.rc"
        done
    ) &
    BG_PID=$!
}

bg_finish() {
    wait "$BG_PID" || true
    local n rc start end
    for n in "${!BG_STEPS[@]}"; do
        printf '\n======== %s (ran in the background; its output) ========\n' "${BG_STEPS[$n]}"
        cat "$BG_DIR/$n.log" 2>/dev/null || echo "(no output: the step never ran)"
        rc=$(cat "$BG_DIR/$n.rc" 2>/dev/null || echo 1)
        start=$(cat "$BG_DIR/$n.start" 2>/dev/null || echo 0)
        end=$(cat "$BG_DIR/$n.end" 2>/dev/null || echo 0)
        STEPS+=("${BG_STEPS[$n]}")
        LOGS+=("$BG_DIR/$n.log")
        TIMES+=("$((end - start))s")
        if [ "$rc" -eq 0 ]; then
            RESULTS+=("ok (in the background)")
        else
            RESULTS+=("FAILED (exit $rc)")
            FAILED=1
        fi
    done
}

skip_step() {
    STEPS+=("$1")
    LOGS+=("")
    TIMES+=("-")
    RESULTS+=("SKIPPED ($2)")
    FAILED=1
}

# why_failed NAME LOG: the lines of a failed step's output that say why (a
# check's FAIL line, an error, a panic, a timeout), else its last lines.
why_failed() {
    [ -s "$2" ] || return 0
    printf '  %s FAILED; from its output:\n' "$1"
    local why
    why=$(tr -d '\r' <"$2" | grep -E '^(FAIL|FAILED|ERROR|error)|panicked at|TIMED OUT|did not finish|Traceback|[0-9]+ failed' |
        grep -vE ' 0 failed' | tail -n 12 || true)
    [ -n "$why" ] || why=$(tr -d '\r' <"$2" | tail -n 8)
    printf '%s\n' "$why" | cut -c1-400 | sed 's/^/    | /'
}

summary() {
    printf '\n======== summary ========\n'
    local i
    for i in "${!STEPS[@]}"; do
        printf '  %-34s %-6s %s\n' "${STEPS[$i]}" "${TIMES[$i]}" "${RESULTS[$i]}"
    done
    for i in "${!STEPS[@]}"; do
        case ${RESULTS[$i]} in FAILED*) why_failed "${STEPS[$i]}" "${LOGS[$i]}" ;; esac
    done
    if [ -n "${JUNIT:-}" ] && [ -s "$JUNIT" ]; then
        python3 - "$JUNIT" <<'PY' || true
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
failed = n["failures"] + n["errors"]
passed = n["tests"] - failed - n["skipped"]
for s in suites:
    for case in s.iter("testcase"):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            # The summary is what survives of a long log: say why, briefly.
            why = " ".join((bad.get("message") or "").split())[:300]
            print(f"  e2e FAILED: {case.get('name')}: {why}")
print(f"e2e: {passed} passed, {failed} failed, {n['skipped']} skipped")
for custody in ("tpm", "soft"):
    cases = [c for s in suites for c in s.iter("testcase")
             if custody in c.get("name", "").partition("[")[2].rstrip("]").split("-")]
    bad = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    print(f"  custody {custody}: {len(cases) - bad - skipped} passed, {bad} failed, {skipped} skipped")
PY
    fi
    if [ -n "${MANAGER_JUNIT:-}" ] && [ -s "$MANAGER_JUNIT" ]; then
        python3 - "$MANAGER_JUNIT" <<'PY' || true
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
failed = n["failures"] + n["errors"]
for s in suites:
    for case in s.iter("testcase"):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            # The summary is what survives of a long log: say why, briefly.
            why = " ".join((bad.get("message") or "").split())[:300]
            print(f"  manager FAILED: {case.get('name')}: {why}")
print(f"manager: {n['tests'] - failed - n['skipped']} passed, {failed} failed, {n['skipped']} skipped")
PY
    fi
    if [ "$FAILED" -eq 0 ]; then
        printf 'ALL CHECKS PASSED (%ss)\n' "$SECONDS"
    else
        printf 'SOME CHECKS FAILED (%ss)\n' "$SECONDS"
    fi
}

if ! run_step "install dependencies" ./scripts/install-deps.sh; then
    summary
    exit 1
fi

run_step "cargo fmt --check" cargo fmt --all -- --check || true
run_step "cargo clippy -D warnings" cargo clippy --workspace --all-targets -- -D warnings || true
run_step "cargo test" cargo test --workspace || true

# The end-to-end suite runs a debug build: a release build would compile every
# dependency a second time, and the suite is not CPU-bound.
BIN="$ROOT/target/debug/localpasskey"
if run_step "cargo build" cargo build --workspace --bins; then
    mkdir -p "$ROOT/test-output"
    JUNIT="$ROOT/test-output/e2e-junit.xml"
    rm -f "$JUNIT"
    run_step "end-to-end (pytest tests/e2e)" \
        env LOCALPASSKEY_BIN="$BIN" TSS2_LOG=all+none "$ROOT/.venv/bin/python" -m pytest "$ROOT/tests/e2e" \
        -v -p no:cacheprovider -n "${E2E_WORKERS:-2}" --durations=10 --junitxml="$JUNIT" "$@" || true
    # Yubico's own tests for a FIDO2 key, from the fido2 sdist: one daemon
    # (presence approved, throw-away data dir) per custody, side by side.
    run_step "python-fido2 device suite (tests/device-suite)" \
        "$ROOT/.venv/bin/python" "$ROOT/tests/device-suite/run.py" --bin "$BIN" || true
    run_step "desktop prompt (pytest tests/desktop)" \
        env LOCALPASSKEY_BIN="$BIN" "$ROOT/.venv/bin/python" -m pytest "$ROOT/tests/desktop" \
        -v -p no:cacheprovider || true
    MANAGER_JUNIT="$ROOT/test-output/manager-junit.xml"
    rm -f "$MANAGER_JUNIT"
    run_step "manager app (tests/manager)" \
        env LOCALPASSKEY_BIN="$BIN" LOCALPASSKEY_MANAGER_BIN="$ROOT/target/debug/localpasskey-manager" \
        "$ROOT/.venv/bin/python" -m pytest "$ROOT/tests/manager" -v -p no:cacheprovider \
        --junitxml="$MANAGER_JUNIT" || true
    # A real kernel HID device: qemu (TCG) with Debian's kernel, the daemon on
    # uhid + swtpm, and libfido2, OpenSSH and python-fido2 against /dev/hidrawN.
    run_step "VM: uhid + real clients (tests/vm)" "$ROOT/tests/vm/run.sh" "$BIN" || true
    # The end-to-end suite's protocol files again, over /dev/hidrawN in the VM.
    run_step "VM: e2e suite over hidraw (tests/vm/e2e.sh)" "$ROOT/tests/vm/e2e.sh" "$BIN" || true
    # The soaks and the short fuzz run go beside the system test, whose VM
    # under TCG leaves a core mostly idle for ~9 minutes.
    crash_soak() {
        env LOCALPASSKEY_BIN="$BIN" TSS2_LOG=all+none "$ROOT/.venv/bin/python" "$ROOT/tests/soak/soak.py" crash \
            --kills "${SOAK_KILLS:-25}"
    }
    channel_soak() {
        env LOCALPASSKEY_BIN="$BIN" TSS2_LOG=all+none "$ROOT/.venv/bin/python" "$ROOT/tests/soak/soak.py" channels \
            --seconds "${SOAK_CHANNEL_SECONDS:-15}"
    }
    fuzz() { ./scripts/fuzz.sh "${FUZZ_SECONDS:-10}"; }
    bg_start "crash soak (${SOAK_KILLS:-25} SIGKILLs)" crash_soak "two-channel soak" channel_soak \
        "fuzz (${FUZZ_SECONDS:-10} s per target)" fuzz
    # A booted Debian 12 (systemd, logind, alice on tty1) installs our package
    # as the README says, reboots and is checked as alice (tests/system).
    run_step "system: Debian 12 booted (tests/system)" \
        env LOCALPASSKEY_DEB_PROFILE=dev "$ROOT/tests/system/run.sh" || true
    bg_finish
    # Real browsers: headless Chromium and Firefox ESR in the VM, the demo relying party, the daemon on uhid with TPM custody
    # and built-in user verification.
    if [ "${BROWSER_TESTS:-1}" = 0 ]; then
        skip_step "VM: real browsers (tests/vm/browser.sh)" "BROWSER_TESTS=0"
    else
        case "${FIREFOX_TESTS:-1}" in
        0) browsers="Chromium" ;;
        only) browsers="Firefox ESR" ;;
        *) browsers="Chromium + Firefox ESR" ;;
        esac
        run_step "VM: $browsers (tests/vm/browser.sh)" "$ROOT/tests/vm/browser.sh" "$BIN" || true
    fi
else
    skip_step "end-to-end (pytest tests/e2e)" "no binary"
    skip_step "python-fido2 device suite (tests/device-suite)" "no binary"
    skip_step "desktop prompt (pytest tests/desktop)" "no binary"
    skip_step "manager app (tests/manager)" "no binary"
    skip_step "VM: uhid + real clients (tests/vm)" "no binary"
    skip_step "system: Debian 12 booted (tests/system)" "no binary"
    skip_step "crash soak" "no binary"
    skip_step "two-channel soak" "no binary"
    run_step "fuzz (${FUZZ_SECONDS:-10} s per target)" ./scripts/fuzz.sh "${FUZZ_SECONDS:-10}" || true
fi

summary
exit "$FAILED"
