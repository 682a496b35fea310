"""The manager app against the real daemon, driven through the accessibility tree.

One daemon (`localpasskey run --transport udp`, TPM custody on swtpm) serves
its API on the test's own session bus; python-fido2 makes and uses passkeys
through the UDP transport; the app is found and pressed through AT-SPI, and
what it shows is compared with what the daemon's API (called with jeepney)
and the authenticator itself say. The daemon's confirmation and PIN prompts
are its scripted presence file. Screenshots: test-output/manager/.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from fido2.client import ClientError
from fido2.ctap import CtapError

import lpk
import mgr

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SITES = {"example.com": ["alice", "bob"], "github.com": ["dave"], "zeta.org": ["carol"]}


@pytest.fixture(scope="module")
def world(daemons, desktop, tmp_path_factory):
    """The daemon with four passkeys on three sites, one sign-in and one
    refusal, and the app on its first run."""
    d = daemons.make()
    regs = {}
    for rp_id, users in SITES.items():
        rp = lpk.RelyingParty(rp_id)
        for u in users:
            regs[(rp_id, u)] = (rp, rp.register(d.client(f"https://{rp_id}"), user_name=u, resident_key="required"))
    rp, bob = regs[("example.com", "bob")]
    rp.authenticate(d.client("https://example.com"), allow=[bob.credential_id])
    d.presence("deny")
    rp_z, carol = regs[("zeta.org", "carol")]
    with pytest.raises(ClientError):
        rp_z.authenticate(d.client("https://zeta.org"), allow=[carol.credential_id])
    assert d.pending_presence() == [], "the daemon did not ask"
    app = mgr.Manager(desktop, tmp_path_factory.mktemp("config"), first_run=True)
    yield d, regs, app
    app.stop()
    if app.stderr():
        print("manager's stderr:\n" + app.stderr())


def tab(app: mgr.Manager, name: str) -> None:
    """Opens a page of the view switcher, as a person clicks its tab."""
    ui = app.ui
    back = ui.all("push button", "Back")
    if back:
        ui.press(back[0])
    ui.press(ui.find("page tab", name))
    wait_selected(app, name)


def wait_selected(app: mgr.Manager, name: str) -> None:
    ui = app.ui
    mgr.wait_for(f"the {name} tab selected", lambda: any(
        t.getState().contains(ui.atspi.STATE_SELECTED) or t.getState().contains(ui.atspi.STATE_CHECKED)
        for t in ui.all("page tab", name)))


def accounts_in_order(app: mgr.Manager) -> list[str]:
    """The accounts of the list, in the order a screen reader reads them."""
    wanted = {u for users in SITES.values() for u in users}
    return [t for t in app.ui.texts() if t in wanted]


def test_first_run_shows_the_backup_advice(world):
    d, regs, app = world
    ui = app.ui
    dialog = ui.window("Keep a Second Way In")
    text = " ".join(ui.texts(dialog))
    for words in ("TPM is cleared", "firmware is reset", "motherboard is replaced",
                  "reinstalled without", "second authenticator", "security key kept in a safe place",
                  "LocalPasskey on a second computer"):
        assert words in text, f"the advice lacks {words!r}: {text}"
    app.desktop.screenshot("01-first-run-backup-advice")
    ui.press_button(lambda n: n.startswith("I Understand"), root=dialog)
    ui.gone("dialog", "Keep a Second Way In")
    assert app.marker.exists(), "the app will show the advice again on the next start"


def test_list_is_grouped_by_site(world, api):
    d, regs, app = world
    ui = app.ui
    wait_selected(app, "Passkeys")
    ui.wait_text("zeta.org")
    listed = {(k["rp_id"], k["user_name"]) for k in api.passkeys()}
    assert listed == {(rp, u) for rp, us in SITES.items() for u in us}
    texts = ui.texts()
    # One group per site, sites in order, each followed by its accounts.
    assert [t for t in texts if t in SITES] == ["example.com", "github.com", "zeta.org"], texts
    assert accounts_in_order(app) == ["alice", "bob", "dave", "carol"]
    assert "2 passkeys" in texts and texts.count("1 passkey") == 2, texts
    assert any("Bob · Last used" in t for t in texts), f"bob's sign-in is not shown: {texts}"
    app.desktop.screenshot("02-passkeys")


def test_sort_by_account_and_by_last_use(world):
    d, regs, app = world
    ui = app.ui
    ui.press_button("Sort by last used")
    # bob signed in last, so example.com leads and bob comes before alice.
    mgr.wait_for("the last-used order", lambda: accounts_in_order(app)[:2] == ["bob", "alice"])
    app.desktop.screenshot("03-sorted-by-last-use")
    ui.press_button("Sort by account")
    mgr.wait_for("the account order", lambda: accounts_in_order(app) == ["alice", "bob", "carol", "dave"])
    ui.press_button("Sort by site")
    mgr.wait_for("the site order", lambda: accounts_in_order(app) == ["alice", "bob", "dave", "carol"])


def type_search(app: mgr.Manager, text: str) -> None:
    entry = app.ui.find(None, "Search passkeys")
    editable = [a for a in app.ui.walk(entry) if "EditableText" in a.get_interfaces()]
    assert editable, "the search entry has no editable text"
    editable[0].queryEditableText().setTextContents(text)


def test_search_by_site_and_by_account(world):
    d, regs, app = world
    ui = app.ui
    type_search(app, "git")
    mgr.wait_for("only github.com", lambda: accounts_in_order(app) == ["dave"])
    assert not ui.has_text("example.com")
    app.desktop.screenshot("04-search")
    type_search(app, "CAROL")
    mgr.wait_for("only carol", lambda: accounts_in_order(app) == ["carol"])
    type_search(app, "nobody-has-this")
    ui.wait_text("No Matching Passkeys")
    type_search(app, "")
    mgr.wait_for("the whole list", lambda: len(accounts_in_order(app)) == 4)


def test_details_say_what_the_site_sees_and_what_the_tpm_guarantees(world, api):
    d, regs, app = world
    ui = app.ui
    ui.press_button("Details of bob at example.com")
    ui.find("push button", "Back")
    ui.wait_text("What example.com Sees")
    [bob] = [k for k in api.passkeys() if k["user_name"] == "bob"]
    texts = ui.texts()
    joined = "\n".join(texts)
    assert lpk.AAGUID_STR in joined, joined
    assert "No (BE=0)" in joined and "No (BS=0)" in joined
    assert "ES256 (ECDSA with P-256 and SHA-256)" in texts
    assert any(t.startswith("Packed self-attestation") for t in texts)
    for attribute in ("fixedTPM", "fixedParent", "sensitiveDataOrigin"):
        assert attribute in texts, f"{attribute} missing: {texts}"
        assert attribute in bob["key_protection"]
    assert "software TPM (swtpm)" in texts
    i = texts.index("Sign count")
    assert texts[i + 1] == str(bob["sign_count"]), texts[i:i + 2]
    assert bob["sign_count"] >= 1
    i = texts.index("Last used")
    assert texts[i + 1] != "Never"
    assert "Created" in texts
    assert "Keep a Second Way In" in texts and "second authenticator" in joined
    app.desktop.screenshot("05-details")
    # The end of the page, scrolled to with the keyboard: Tab until Delete
    # has the focus, as a keyboard user gets there.
    # (GTK 4.8's scroll bars have no Value interface: the button's place
    # in the window tells that the page scrolled; nothing is clicked there.)
    window_height = app.window.queryComponent().getExtents(1).height

    def delete_in_view() -> bool:
        e = ui.find("push button", "Delete Passkey…").queryComponent().getExtents(1)
        return 0 <= e.y and e.y + e.height <= window_height

    assert not delete_in_view(), "the page fits the window: nothing to scroll"
    delete = ui.find("push button", "Delete Passkey…")
    for _ in range(60):
        if delete.getState().contains(ui.atspi.STATE_FOCUSED):
            break
        app.desktop.keys("LocalPasskey", "Tab")
    assert delete.getState().contains(ui.atspi.STATE_FOCUSED), "Tab never reached Delete"
    mgr.wait_for("the page scrolled to Delete", delete_in_view)
    app.desktop.screenshot("06-details-end")
    ui.press_button("Back")
    wait_selected(app, "Passkeys")


def test_delete_names_site_and_account_and_the_daemon_confirms(world, api):
    d, regs, app = world
    ui = app.ui
    rp, alice = regs[("example.com", "alice")]
    ui.press_button("Details of alice at example.com")
    ui.press_button("Delete Passkey…")
    dialog = ui.dialog()
    text = " ".join(ui.texts(dialog))
    assert "Delete Passkey for example.com?" in text
    assert "alice at example.com" in text and "example.com will no longer accept this passkey" in text, text
    app.desktop.screenshot("07-delete-confirmation")

    # Cancel: nothing asked, nothing deleted.
    ui.press_button(lambda n: n.startswith("Cancel"), root=dialog)
    ui.no_dialog()
    assert len(api.passkeys()) == 4

    # The person says no in the daemon's own prompt: still there, and the app says why.
    d.presence("deny")
    ui.press_button("Delete Passkey…")
    dialog = ui.dialog()
    ui.press_button(lambda n: n.startswith("Delete"), root=dialog)
    ui.wait_toast("You declined in LocalPasskey’s window. Nothing was changed.")
    assert d.pending_presence() == [], "the daemon did not ask the person"
    assert len(api.passkeys()) == 4
    app.desktop.screenshot("08-delete-refused")

    d.presence("approve")
    ui.press_button("Delete Passkey…")
    dialog = ui.dialog()
    ui.press_button(lambda n: n.startswith("Delete"), root=dialog)
    ui.wait_toast("Deleted the passkey of alice at example.com")
    wait_selected(app, "Passkeys")
    mgr.wait_for("alice gone from the list", lambda: accounts_in_order(app) == ["bob", "dave", "carol"])
    app.desktop.screenshot("09-deleted")
    ids = {k["credential_id"] for k in api.passkeys()}
    assert alice.credential_id.hex() not in ids and len(ids) == 3
    # The site can no longer use it.
    with pytest.raises(ClientError) as e:
        rp.authenticate(d.client("https://example.com"), allow=[alice.credential_id])
    assert isinstance(e.value.cause, CtapError) and e.value.cause.code == CtapError.ERR.NO_CREDENTIALS


def pin_row(app: mgr.Manager, title: str) -> str:
    """The value under `title` in the PIN group."""
    texts = app.ui.texts()
    start = next(i for i, t in enumerate(texts) if t.startswith("Every sign-in needs this PIN"))
    return texts[texts.index(title, start) + 1]


def test_pin_status_and_change(world, api):
    d, regs, app = world
    ui = app.ui
    tab(app, "PIN")
    ui.wait_text("Tries left")
    assert pin_row(app, "PIN") == "Set"
    assert pin_row(app, "Tries left") == str(api.pin_status()["retries"]) == "8"
    ui.find("push button", "Change PIN…")
    assert not ui.all("push button", "Set PIN…")
    app.desktop.screenshot("10-pin")

    # A wrong current PIN in the daemon's prompt: the app says so, and the TPM counted it.
    new = "246802"
    d.presence(f"change-pin 000000 {new}")
    ui.press_button("Change PIN…")
    ui.wait_toast("The current PIN was wrong. Nothing was changed.")
    mgr.wait_for("7 tries left", lambda: pin_row(app, "Tries left") == "7")
    app.desktop.screenshot("11-pin-wrong")

    d.presence(f"change-pin {d.pin} {new}")
    ui.press_button("Change PIN…")
    ui.wait_toast("PIN changed")
    mgr.wait_for("8 tries left", lambda: pin_row(app, "Tries left") == "8")
    assert d.pending_presence() == []
    old, d.pin = d.pin, new
    # The new PIN is what the daemon's own verification prompt needs now.
    rp, bob = regs[("example.com", "bob")]
    d.presence(f"pin {new}")
    rp.authenticate(d.client("https://example.com"), allow=[bob.credential_id])
    assert d.pending_presence() == []
    # Back to the PIN the daemon's scripted prompt types by itself.
    d.presence(f"change-pin {new} {old}")
    ui.press_button("Change PIN…")
    ui.wait_toast("PIN changed")
    d.pin = old
    mgr.wait_for("8 tries left", lambda: pin_row(app, "Tries left") == "8")


def test_health_shows_doctors_findings_with_fixes(world, api):
    d, regs, app = world
    ui = app.ui
    tab(app, "Health")
    findings = api.health()
    assert findings
    # Some findings carry live figures (free disk space): compared without digits.
    def words(t: str) -> str:
        return re.sub(r"[0-9]+", "#", t)
    mgr.wait_for("the findings", lambda: words(findings[0]["text"]) in map(words, ui.texts()))
    texts = [words(t) for t in ui.texts()]
    for f in findings:
        assert words(f["text"]) in texts, f"{f['text']!r} not shown"
        if f["fix"]:
            assert words(f"Fix: {f['fix']}") in texts, f"the fix of {f['check']} not shown"
    bad = [f for f in findings if f["status"] in ("fail", "warn")]
    assert bad, "doctor found nothing to fix on a software TPM over UDP: nothing shows a fix"
    icons = [a.name for a in ui.all("image") if a.name in ("OK", "Note", "Warning", "Problem")]
    assert len(icons) == len(findings)
    # Problems first, then warnings, then notes, then what is fine.
    rank = {"Problem": 0, "Warning": 1, "Note": 2, "OK": 3}
    assert [rank[i] for i in icons] == sorted(rank[i] for i in icons), icons
    assert icons[0] == {"fail": "Problem", "warn": "Warning"}[min(f["status"] for f in bad)]
    app.desktop.screenshot("12-health")


def test_activity_lists_sign_ins_registrations_and_refusals_live(world, api):
    d, regs, app = world
    ui = app.ui
    tab(app, "Activity")
    ui.wait_text("Recent Activity")
    texts = ui.texts()
    joined = "\n".join(texts)
    assert "Passkey created · zeta.org" in texts
    assert "Sign-in · zeta.org" in texts and "Refused · carol" in joined, joined
    assert "Sign-in · example.com" in texts and "Approved · bob" in joined
    assert "Passkey deleted · example.com" in texts
    log = api.activity(200)
    [listing] = ui.all("list", "Activity")
    assert len(ui.all("list item", root=listing)) == len(log)
    assert not any(e["action"] in texts for e in log), "an action without words of its own"

    # A sign-in now appears at once (ActivityAdded), without a refresh.
    before = texts.count("Sign-in · github.com")
    rp, dave = regs[("github.com", "dave")]
    rp.authenticate(d.client("https://github.com"), allow=[dave.credential_id])
    mgr.wait_for("the new sign-in", lambda: ui.texts().count("Sign-in · github.com") == before + 1)
    assert ui.texts().index("Sign-in · github.com") < ui.texts().index("Passkey created · zeta.org")
    app.desktop.screenshot("13-activity")


def test_desktop_file_and_icon_are_valid():
    desktop_file = mgr.REPO / "packaging/desktop/org.localpasskey.Manager.desktop"
    r = subprocess.run(["desktop-file-validate", str(desktop_file)], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr
    text = desktop_file.read_text()
    assert "Exec=localpasskey-manager\n" in text and "Icon=org.localpasskey.Manager\n" in text
    import xml.etree.ElementTree as ET
    svg = ET.parse(mgr.REPO / "packaging/desktop/org.localpasskey.Manager.svg").getroot()
    assert svg.tag.endswith("svg") and svg.get("viewBox") == "0 0 128 128"
    cargo = (mgr.REPO / "crates/localpasskey/Cargo.toml").read_text()
    for asset in ('"target/release/localpasskey-manager", "usr/bin/"',
                  '"../../packaging/desktop/org.localpasskey.Manager.desktop", "usr/share/applications/"',
                  '"../../packaging/desktop/org.localpasskey.Manager.svg", "usr/share/icons/hicolor/scalable/apps/"'):
        assert asset in cargo, f"the Debian package does not ship {asset}"
