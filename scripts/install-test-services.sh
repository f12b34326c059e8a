#!/usr/bin/env bash
# Installs the servers the test suite runs for real (PostgreSQL 15, nats-server) and the
# browser the web page's test drives (chromium + chromium-driver) from Debian's packages when
# they are missing. Tests start private instances themselves; no system service is started here.
set -euo pipefail
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)  # checks deploy/candlekeeper.service
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing test services: ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
