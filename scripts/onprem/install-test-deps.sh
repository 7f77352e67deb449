#!/usr/bin/env bash
# Installs the real Network UPS Tools daemons that the tests run (dummy-ups, upsd, upsmon; see
# test-support/src/nut/). Idempotent: does nothing when they are there.
# Debian/Ubuntu only; needs root (CI runs as root).
set -euo pipefail

have_elf() {   # the real binaries, not Debian's /sbin shell wrappers
	local d
	for d in /lib/nut /usr/lib/nut /usr/libexec/nut /usr/sbin /sbin; do
		[ -f "$d/$1" ] && [ "$(head -c 4 "$d/$1" 2>/dev/null)" = "$(printf '\177ELF')" ] && return 0
	done
	return 1
}

if have_elf upsd && have_elf upsmon && have_elf dummy-ups; then
	echo "install-test-deps: NUT already installed"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-test-deps: need root to install nut-server nut-client" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq nut-server nut-client
echo "install-test-deps: installed nut-server nut-client"
