#!/usr/bin/env bash
# mmdebstrap's customize hook for tests/system's image (build-rootfs.sh):
# what makes a fresh Debian tree a small desktop-like machine that runs the
# test by itself at boot.
#
#   rootfs-setup.sh ROOT
#
# Everything the test does lives in the checkout (tests/system/guest.py, read
# over 9p at each boot); only the wiring is baked in here, so changing the
# test does not rebuild the image.
set -euo pipefail
R=$1

echo lpk-system >"$R/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 lpk-system\n' >"$R/etc/hosts"
# systemd-firstboot must have nothing to ask at the first boot.
tr -d - </proc/sys/kernel/random/uuid >"$R/etc/machine-id"
ln -sf /usr/share/zoneinfo/Etc/UTC "$R/etc/localtime"

# The disk, and the host's two 9p shares: the checkout (read-only) and the
# run's output folder (the .deb and python-fido2 come in, results go out).
mkdir -p "$R/mnt/src" "$R/mnt/out"
cat >"$R/etc/fstab" <<'EOF'
/dev/vda / ext4 rw,errors=remount-ro 0 1
src /mnt/src 9p trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose 0 0
out /mnt/out 9p trans=virtio,version=9p2000.L,msize=512000 0 0
EOF

# Two ordinary users, as on a family laptop. alice may use sudo without a
# password (install.sh calls sudo; nobody is there to type one); bob may not.
chroot "$R" useradd --create-home --uid 1000 --shell /bin/bash --groups sudo alice
chroot "$R" useradd --create-home --uid 1001 --shell /bin/bash bob
echo 'alice ALL=(ALL:ALL) NOPASSWD: ALL' >"$R/etc/sudoers.d/alice"
chmod 0440 "$R/etc/sudoers.d/alice"

# Real logins on the virtual consoles: agetty logs alice in on tty1 at boot
# (login -> PAM -> pam_systemd: a logind session on seat0), and bob on tty2
# when the test starts that getty.
for vt in tty1:alice tty2:bob; do
    d="$R/etc/systemd/system/getty@${vt%%:*}.service.d"
    mkdir -p "$d"
    printf '[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin %s --noclear %%I $TERM\n' "${vt#*:}" >"$d/autologin.conf"
done

# The test itself: a root service that runs the checkout's guest.py.
cat >"$R/etc/systemd/system/lpk-system-test.service" <<'EOF'
[Unit]
Description=LocalPasskey system test (guest.py from the host's checkout)
Requires=mnt-src.mount mnt-out.mount
After=mnt-src.mount mnt-out.mount

[Service]
Type=simple
ExecStart=/usr/bin/python3 /mnt/src/tests/system/guest.py --out /mnt/out
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
EOF
chroot "$R" systemctl enable lpk-system-test.service

# The serial line is the host's log, not a login; timers that would download
# or scrub in the middle of a test are off.
for u in serial-getty@ttyS0.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    fstrim.timer man-db.timer; do
    ln -sf /dev/null "$R/etc/systemd/system/$u"
done
