#!/usr/bin/env bash
# Installs burst-agent on the NUT host (the machine running upsmon) - run as root from the
# repository root after `cargo build --release -p burst-agent`. Idempotent; never overwrites
# an existing config or key. Next steps are printed at the end (and in agent/README.md).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${1:-target/release/burst-agent}
user=${BURST_AGENT_USER:-nut}    # the user upsmon runs NOTIFYCMD as

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release -p burst-agent)" >&2; exit 1; }
getent passwd "$user" > /dev/null || { echo "no user $user (is nut-client installed?)" >&2; exit 1; }
group=$(id -gn "$user")

install -m 755 "$bin" /usr/local/bin/burst-agent
install -d -m 750 -o root -g "$group" /etc/burst-agent
install -d -m 750 -o "$user" -g "$group" /var/lib/burst-agent /var/lib/burst-agent/spool
if [ ! -e /etc/burst-agent.toml ]; then
	install -m 640 -o root -g "$group" "$here/burst-agent.toml" /etc/burst-agent.toml
	echo "wrote /etc/burst-agent.toml (edit it)"
fi
if [ ! -e /etc/burst-agent/ed25519.pem ]; then
	/usr/local/bin/burst-agent keygen --private-key-out /etc/burst-agent/ed25519.pem \
		> /etc/burst-agent/ed25519.pub.pem
	chgrp "$group" /etc/burst-agent/ed25519.pem
	chmod 640 /etc/burst-agent/ed25519.pem
	echo "new key pair; give this public key to the function (BURST_AGENT_ED25519_PUBLIC_KEY):"
	cat /etc/burst-agent/ed25519.pub.pem
fi
if [ -d /etc/systemd/system ]; then
	install -m 644 "$here/burst-agent-heartbeat.service" "$here/burst-agent-heartbeat.timer" /etc/systemd/system/
	sed -i "s/^User=nut/User=$user/; s/^Group=nut/Group=$group/" /etc/systemd/system/burst-agent-heartbeat.service
	systemctl daemon-reload 2> /dev/null || true
fi
cat <<NEXT
next:
  1. edit /etc/burst-agent.toml (site_id, base_url, function_key, ups)
  2. add the lines of $here/upsmon.conf.snippet to /etc/nut/upsmon.conf; restart nut-monitor
  3. sudo -u $user burst-agent test
  4. systemctl enable --now burst-agent-heartbeat.timer
NEXT
