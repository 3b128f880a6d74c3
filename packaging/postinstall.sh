#!/bin/sh
# After install or upgrade (deb and rpm).
# The systemd units (examples/systemd) run as the system user certfleet: create it, let it read
# /etc/certfleet and own its state and log directories.
if ! getent passwd certfleet >/dev/null 2>&1; then
  if command -v useradd >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/certfleet --no-create-home --shell /usr/sbin/nologin certfleet || true
  elif command -v adduser >/dev/null 2>&1; then
    adduser --system --group --home /var/lib/certfleet --no-create-home certfleet || true
  fi
fi
# Pin the packaged plugins to the checksums shipped with them (/usr/lib/certfleet/plugins/SHA256SUMS),
# so that certfleet trusts exactly these binaries and an upgrade is not refused.
if ! /usr/bin/certfleet plugins install --dest /usr/lib/certfleet/plugins /usr/lib/certfleet/plugins; then
  echo "certfleet: the packaged plugins were not pinned; run: certfleet plugins install /usr/lib/certfleet/plugins" >&2
fi
if getent passwd certfleet >/dev/null 2>&1; then
  chgrp certfleet /etc/certfleet 2>/dev/null || true
  chown -R certfleet: /var/lib/certfleet /var/log/certfleet 2>/dev/null || true
fi
if command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
