#!/bin/sh
# Debian packages the test suite needs, installed when missing (root only).
# dovecot: the real IMAP server the tests start (tests/servers/dovecot.py).
# systemd: systemd-analyze (verify the unit files) and systemd-socket-activate (socket activation
#   without a service manager) for tests/service; present on most machines already, and in a bare
#   Debian 12 container about 5.5 MB to download (17 MB installed) with its libraries. Installing
#   it starts nothing: it does not become PID 1 in a container.
set -eu
PACKAGES="dovecot-core dovecot-imapd systemd"
missing=""
for pkg in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages:$missing; install them with: sudo apt-get install$missing" >&2
    exit 1
fi
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
