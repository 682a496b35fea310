"""The real GTK dialog under Xvfb, driven with the keyboard only.

Screenshots of each kind of dialog land in test-output/prompt-*.png.
"""

from __future__ import annotations

import time

import desk

# Allow and the PIN field stay dead this long after the window is shown
# (ARM_DELAY in crates/localpasskey-prompt/src/main.rs), plus some slack.
ARMED = 1.2


def request(action="sign_in", rp_id="example.com", user_name="alice@example.com", needs_pin=False,
            retries=None, timeout_ms=20000):
    return {
        "action": action,
        "rp_id": rp_id,
        "user_name": user_name,
        "needs_pin": needs_pin,
        "retries": retries,
        "timeout_ms": timeout_ms,
    }


def test_typed_pin_and_enter_approve_with_the_pin(x, prompts):
    p = prompts(request(needs_pin=True, retries=7))
    wid = x.wait_window()
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-sign-in-pin-empty")
    x.type("246810")
    time.sleep(0.3)
    x.screenshot(wid, "prompt-sign-in-pin-typed")
    x.keys("Return")
    assert p.answer() == {"answer": "approve", "pin": "246810"}
    x.wait_no_window()


def test_enter_with_an_empty_pin_field_does_nothing_and_escape_denies(x, prompts):
    p = prompts(request(action="unlock", needs_pin=True, retries=3))
    wid = x.wait_window()
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-unlock-3-tries")
    x.keys("Return")
    time.sleep(0.5)
    assert p.still_open(), "Enter with an empty PIN field closed the dialog"
    x.keys("Escape")
    assert p.answer() == {"answer": "deny"}


def test_escape_denies_after_a_pin_was_typed(x, prompts):
    p = prompts(request(needs_pin=True, retries=8))
    x.wait_window()
    time.sleep(ARMED)
    x.type("1234")
    x.keys("Escape")
    assert p.answer() == {"answer": "deny"}, "a denied dialog must not give the PIN away"


def test_enter_on_a_presence_dialog_denies(x, prompts):
    """Presence-only: the focus starts on Deny and Allow is not the default."""
    p = prompts(request(action="register", user_name="pat"))
    wid = x.wait_window()
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-register")
    x.keys("Return")
    assert p.answer() == {"answer": "deny"}


def test_tab_to_allow_then_enter_approves_presence(x, prompts):
    p = prompts(request(action="register", user_name="pat"))
    x.wait_window()
    time.sleep(ARMED)
    x.keys("Tab", "Return")
    assert p.answer() == {"answer": "approve"}, "presence carries no PIN"


def test_space_on_allow_approves_presence(x, prompts):
    p = prompts(request(action="select", rp_id="", user_name=None))
    wid = x.wait_window()
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-select")
    x.keys("Tab", "space")
    assert p.answer() == {"answer": "approve"}


def test_keys_pressed_as_the_dialog_appears_never_approve(x, prompts):
    """Someone typing in another window when the dialog pops up: Tab+Enter
    right away land before Allow is armed, so Enter hits Deny."""
    p = prompts(request(action="register"))
    x.wait_window()
    x.keys("Tab", "Return")
    assert p.answer() == {"answer": "deny"}


def test_pin_typed_as_the_dialog_appears_is_not_taken(x, prompts):
    """The PIN field is dead at first: keystrokes meant for another window
    cannot spend one of the PIN's tries."""
    p = prompts(request(needs_pin=True, retries=8))
    x.wait_window()
    x.type("9999")
    time.sleep(ARMED)
    x.keys("Return")  # the field is empty, so Enter does nothing
    time.sleep(0.4)
    assert p.still_open()
    x.type("246810")
    x.keys("Return")
    assert p.answer() == {"answer": "approve", "pin": "246810"}


def test_nobody_answering_times_out_with_the_countdown(x, prompts):
    p = prompts(request(action="sign_in", timeout_ms=4000))
    wid = x.wait_window()
    time.sleep(1.5)
    x.screenshot(wid, "prompt-countdown")
    assert p.answer(timeout=10) == {"answer": "timeout"}
    elapsed = time.monotonic() - p.started
    assert 3.5 < elapsed < 7, f"a 4 s timeout took {elapsed:.1f} s"


def test_reset_says_it_erases_everything(x, prompts):
    p = prompts(request(action="reset", rp_id="", user_name=None))
    wid = x.wait_window()
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-reset")
    x.keys("Escape")
    assert p.answer() == {"answer": "deny"}


def test_look_alike_and_reordering_characters_are_shown(x, prompts):
    """A right-to-left override would show "\u202emoc.elgoog" as "google.com";
    the dialog shows the escape instead, and warns about non-ASCII names."""
    p = prompts(request(action="sign_in", rp_id="\u202emoc.elgoog", user_name="admin\u200b"))
    wid = x.wait_window()
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-hostile-rtl")
    x.keys("Escape")
    assert p.answer() == {"answer": "deny"}
    p = prompts(request(action="register", rp_id="g\u043e\u043egle.com"))
    wid = x.wait_window()
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-hostile-homoglyph")
    x.keys("Escape")
    assert p.answer() == {"answer": "deny"}


def test_a_dialog_whose_display_goes_away_answers_nothing(x, prompts):
    """The daemon treats no answer as a refusal."""
    p = prompts(request())
    wid = x.wait_window()
    x.xdo("windowkill", wid)
    rc, out, _ = p.result()
    assert out == "" and rc != 0


def test_without_a_display_it_says_so_and_answers_nothing(x, prompts):
    env = {k: v for k, v in x.env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    p = prompts(request(), env=env)
    rc, out, err = p.result()
    assert (rc, out) == (3, "")
    assert "cannot open the display" in err


def test_a_bad_request_is_refused(x, prompts):
    p = prompts({"action": "format_disk", "timeout_ms": 1000})
    rc, out, err = p.result()
    assert (rc, out) == (2, "")
    assert "bad request" in err


# ---- the account chooser: a username-less sign-in with several passkeys

ACCOUNTS = [
    {"user_name": "bob", "display_name": "Bob Builder"},
    {"user_name": "alice", "display_name": "Alice"},
    {"user_name": "carol"},
]


def choosing(accounts=ACCOUNTS, needs_pin=True, **kw):
    r = request(user_name=None, needs_pin=needs_pin, retries=8 if needs_pin else None, **kw)
    r["accounts"] = accounts
    return r


def test_the_second_account_is_picked_with_the_keyboard_then_the_pin(x, prompts):
    """Down moves to (and picks) the second row, Enter on it goes on to the
    PIN field, and the answer names the pick by its index."""
    p = prompts(choosing())
    wid = x.wait_window()
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-choose-account-none-picked")
    x.keys("Down", "Return")
    x.type("246810")
    time.sleep(0.3)
    x.screenshot(wid, "prompt-choose-account")
    x.keys("Return")
    assert p.answer() == {"answer": "approve", "pin": "246810", "chosen": 1}
    x.wait_no_window()


def test_no_account_is_picked_for_the_person(x, prompts):
    """Nothing is picked in advance: a PIN and Enter without a pick do
    nothing, and Escape still denies."""
    p = prompts(choosing())
    x.wait_window()
    time.sleep(ARMED)
    x.keys("Tab")  # from the list to the PIN field
    x.type("246810")
    x.keys("Return")
    time.sleep(0.5)
    assert p.still_open(), "approved without an account picked"
    x.keys("Escape")
    assert p.answer() == {"answer": "deny"}, "a denied dialog gives neither PIN nor pick away"


def test_a_presence_chooser_needs_a_pick_and_allow(x, prompts):
    """Without a PIN field: Enter on a row picks it but never approves;
    approving takes Tab past Deny to Allow, as in every presence dialog."""
    p = prompts(choosing(needs_pin=False))
    wid = x.wait_window()
    time.sleep(ARMED)
    x.keys("Down", "Down", "Return")
    time.sleep(0.5)
    assert p.still_open(), "Enter on a row approved a presence dialog"
    x.screenshot(wid, "prompt-choose-account-presence")
    x.keys("Tab", "Tab", "Return")
    assert p.answer() == {"answer": "approve", "chosen": 2}


def test_keys_pressed_as_a_chooser_appears_pick_nothing(x, prompts):
    p = prompts(choosing(needs_pin=False))
    x.wait_window()
    x.keys("Down", "Tab", "Tab", "Return")
    assert p.answer() == {"answer": "deny"}


def test_account_names_are_shown_like_user_names(x, prompts):
    hostile = [
        {"user_name": "\u202enimda", "display_name": "Bob\nAccount: admin"},
        {"user_name": "x" * 400},
        {"display_name": ""},
    ]
    p = prompts(choosing(hostile))
    wid = x.wait_window()
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-choose-account-hostile")
    x.keys("Escape")
    assert p.answer() == {"answer": "deny"}


def test_too_many_accounts_is_a_bad_request(x, prompts):
    p = prompts(choosing([{"user_name": f"u{i}"} for i in range(65)]))
    rc, out, err = p.result()
    assert (rc, out) == (2, "")
    assert "more than 64 accounts" in err


def test_a_new_pin_is_typed_twice_after_the_current_one(x, prompts):
    """Enter moves from the current PIN to the new one and to its repeat;
    two PINs that differ are not taken, and the dialog says why."""
    r = request(action="change_pin", rp_id="", user_name=None, needs_pin=True, retries=7)
    r["new_pin_min_length"] = 6
    p = prompts(r)
    wid = x.wait_window()
    time.sleep(ARMED)
    x.type("246810")
    x.keys("Return")
    x.type("135790")
    x.keys("Return")
    x.type("135791")
    x.keys("Return")
    time.sleep(0.5)
    x.screenshot(wid, "prompt-change-pin-differ")
    assert p.still_open(), "two different new PINs were taken"
    x.keys("ctrl+a")
    x.type("135790")
    time.sleep(0.3)
    x.screenshot(wid, "prompt-change-pin")
    x.keys("Return")
    assert p.answer() == {"answer": "approve", "pin": "246810", "new_pin": "135790"}
    x.wait_no_window()


def test_a_first_pin_must_be_long_enough(x, prompts):
    r = request(action="set_pin", rp_id="", user_name=None)
    r["new_pin_min_length"] = 6
    p = prompts(r)
    wid = x.wait_window()
    time.sleep(ARMED)
    x.type("1234")
    x.keys("Return")
    x.type("1234")
    x.keys("Return")
    time.sleep(0.5)
    x.screenshot(wid, "prompt-set-pin-too-short")
    assert p.still_open(), "a PIN shorter than the minimum was taken"
    x.keys("Escape")
    assert p.answer() == {"answer": "deny"}


def test_a_failure_report_asks_nothing(x, prompts):
    r = request(action="failed", user_name=None)
    r["message"] = ("The disk that holds LocalPasskey's data is full, so nothing could be saved. "
                    "Free some space and try again; your passkeys are safe.")
    p = prompts(r)
    wid = x.wait_window()
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-failed")
    # Its one button has the focus once armed: Enter closes it.
    x.keys("Return")
    assert p.answer() == {"answer": "approve"}
    x.wait_no_window()
