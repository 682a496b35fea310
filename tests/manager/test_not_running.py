"""The app when the daemon is not on the bus: it says so, offers Retry, and
comes back by itself when the daemon takes its name. In a module of its own:
the app is one instance per session bus, so no other run of it may be open."""

from __future__ import annotations

import lpk
import mgr


def test_without_the_daemon_the_app_says_so_and_comes_back(daemons, desktop, tmp_path):
    d = daemons.make(start=False)
    running = [x for x in daemons.started if x.proc is not None and x.proc.poll() is None]
    for x in running:
        x.stop()
    mgr.wait_for("no daemon on the bus",
                 lambda: not mgr.has_owner(desktop.bus.address, lpk.bus.BUS_NAME))
    app = mgr.Manager(desktop, tmp_path / "config")
    try:
        ui = app.ui
        ui.wait_text("LocalPasskey Is Not Running")
        assert ui.has_text("systemctl --user start localpasskey")
        app.desktop.screenshot("14-not-running")
        # Retry while it is still away: still said plainly.
        ui.press_button("Retry")
        ui.wait_text("LocalPasskey Is Not Running")
        assert not ui.all("page tab", "Passkeys")
        # The daemon starts: the app follows its bus name without a click.
        d.start()
        ui.find("page tab", "Passkeys")
        ui.wait_text("No Passkeys Yet")
        app.desktop.screenshot("15-back-no-passkeys")
        # And when it stops, the app says so again.
        d.stop()
        ui.wait_text("LocalPasskey Is Not Running")
        assert not ui.all("page tab", "Passkeys")
    finally:
        app.stop()
