#!/usr/bin/env bash
# `make infra`: the Debian packages the real-infrastructure tests and `make cluster` run
# (PostgreSQL 15 comes with the machine; pgbackrest archives its WAL and takes base
# backups), and Chromium for the admin UI's browser tests
# (driven by Playwright through /usr/bin/chromium: Playwright's own browser download is
# not available here). Installed only when missing, without letting the
# packages start their own daemons on the default ports (pgbouncer 6432, etcd 2379/2380,
# haproxy): our code starts private instances on free ports instead.
set -euo pipefail

PACKAGES=(pgbouncer patroni etcd-server haproxy pgbackrest chromium)
SERVICES=(pgbouncer patroni etcd haproxy)  # chromium starts no daemon

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$' \
    || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "infra: ${PACKAGES[*]} already installed"
  exit 0
fi

command=(apt-get install -y -q --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -ne 0 ]; then
  echo "infra: missing ${missing[*]}; as root run: apt-get update && ${command[*]}" >&2
  exit 1
fi

# invoke-rc.d asks /usr/sbin/policy-rc.d whether a package may start its service; 101 means
# "no". Put one in place for the install only, unless the machine already has its own.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=true
fi
cleanup() { if $own_policy; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
"${command[@]}"

# Under systemd the units are also enabled for the next boot: disable and stop them.
if [ -d /run/systemd/system ]; then
  systemctl disable --now "${SERVICES[@]}" 2>/dev/null || true
fi
# Whatever started anyway (a machine whose policy allowed it) is stopped through its init script.
for service in "${SERVICES[@]}"; do
  if [ -x "/etc/init.d/$service" ] && "/etc/init.d/$service" status >/dev/null 2>&1; then
    "/etc/init.d/$service" stop || true
  fi
done
echo "infra: installed ${missing[*]}"
