#!/bin/sh
# Debian packages the test suite needs, installed when missing (root only).
# dovecot: the real IMAP server the tests start (tests/servers/dovecot.py).
set -eu
PACKAGES="dovecot-core dovecot-imapd"
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
