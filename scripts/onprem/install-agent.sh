#!/usr/bin/env bash
# Installs burst-agent on the NUT host (the machine running upsmon). Idempotent; never
# overwrites an existing config or key. Next steps are printed at the end (and in
# agent/README.md). Run `install-agent.sh --help` for the options.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
	cat <<USAGE
usage: install-agent.sh [--prefix DIR] [--user USER] [BINARY]

  BINARY        the burst-agent binary to install
                (default: target/release/burst-agent, from cargo build --release -p burst-agent)
  --prefix DIR  install under DIR instead of / (DIR/usr/local/bin, DIR/etc, DIR/var/lib):
                for a trial run or a test; systemd units are then not installed
  --user USER   the user upsmon runs NOTIFYCMD as (default: nut, or \$BURST_AGENT_USER)

Run as root (for example from a root shell, with su -c, or sudo where it exists): the files
are given to USER's group. With --prefix as another user, ownership is left as it is.
USAGE
}

prefix=""
user=${BURST_AGENT_USER:-nut}
bin=""
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
	--user) user=${2:?--user needs a name}; shift 2 ;;
	-*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
	*) bin=$1; shift ;;
	esac
done
bin=${bin:-target/release/burst-agent}

root=0
[ "$(id -u)" = 0 ] && root=1
if [ $root = 0 ] && [ -z "$prefix" ]; then
	echo "run as root (or give --prefix DIR for a trial install)" >&2
	exit 1
fi
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release -p burst-agent, or pass its path)" >&2; exit 1; }
if ! getent passwd "$user" > /dev/null; then
	if [ -n "$prefix" ]; then
		user=$(id -un)
	else
		echo "no user $user (is nut-client installed? or give --user)" >&2
		exit 1
	fi
fi
group=$(id -gn "$user")
# Ownership only where we may set it.
own() { [ $root = 1 ] && echo "-o $1 -g $group" || true; }

bindir="$prefix/usr/local/bin"
etc="$prefix/etc"
var="$prefix/var/lib/burst-agent"
install -d "$bindir" "$etc"
install -m 755 "$bin" "$bindir/burst-agent"
# shellcheck disable=SC2046
install -d -m 750 $(own root) "$etc/burst-agent"
# shellcheck disable=SC2046
install -d -m 750 $(own "$user") "$var" "$var/spool"
if [ ! -e "$etc/burst-agent.toml" ]; then
	# shellcheck disable=SC2046
	install -m 640 $(own root) "$here/burst-agent.toml" "$etc/burst-agent.toml"
	if [ -n "$prefix" ]; then
		# The example's absolute paths, moved under the prefix.
		sed -i "s#\"/etc/#\"$etc/#g; s#\"/var/lib/#\"$prefix/var/lib/#g" "$etc/burst-agent.toml"
	fi
	echo "wrote $etc/burst-agent.toml (edit it)"
fi
if [ ! -e "$etc/burst-agent/ed25519.pem" ]; then
	"$bindir/burst-agent" keygen --private-key-out "$etc/burst-agent/ed25519.pem" \
		> "$etc/burst-agent/ed25519.pub.pem"
	[ $root = 1 ] && chgrp "$group" "$etc/burst-agent/ed25519.pem"
	chmod 640 "$etc/burst-agent/ed25519.pem"
	echo "new key pair; give this public key to the function (BURST_AGENT_ED25519_PUBLIC_KEY):"
	cat "$etc/burst-agent/ed25519.pub.pem"
fi
if [ -z "$prefix" ] && [ -d /etc/systemd/system ]; then
	install -m 644 "$here/burst-agent-heartbeat.service" "$here/burst-agent-heartbeat.timer" /etc/systemd/system/
	sed -i "s/^User=nut/User=$user/; s/^Group=nut/Group=$group/" /etc/systemd/system/burst-agent-heartbeat.service
	systemctl daemon-reload 2> /dev/null || true
	timer="systemctl enable --now burst-agent-heartbeat.timer"
else
	timer="run '$bindir/burst-agent --config $etc/burst-agent.toml heartbeat' every 30 s as $user (a cron line or a loop: agent/README.md, step 6; or the CronJob in $here)"
fi
cat <<NEXT
next:
  1. edit $etc/burst-agent.toml (site_id, base_url, function_key, ups)
  2. add the lines of $here/upsmon.conf.snippet to /etc/nut/upsmon.conf; restart nut-monitor
  3. as $user: burst-agent --config $etc/burst-agent.toml doctor, then ... test
     (from root: runuser -u $user -- $bindir/burst-agent --config $etc/burst-agent.toml test)
  4. $timer
NEXT
