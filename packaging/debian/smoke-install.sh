#!/usr/bin/env bash
# smoke-install.sh -- installs a built ugem .deb on a Debian 12+ host (or VM)
# that runs systemd, and checks that the service starts and answers.
#
#   sudo bash packaging/debian/smoke-install.sh target/debian/ugem_*.deb
#
# Run it on a disposable machine: it installs the package, moves SMTP to a
# free port with a drop-in (port 25 may belong to another MTA), restarts the
# service and checks, in order: systemd says active, the unit reached READY
# (Type=notify), the SMTP banner on the port, the admin API through the CLI
# (`ugem domain list` as the packaged token), and a clean stop. Then it purges
# the package and checks that /var/lib/ugem (the queue) was kept.
# tests/packaging.rs checks the package's contents on any machine; this
# script is the part that needs a running systemd.
set -euo pipefail
DEB=${1:?usage: smoke-install.sh ugem_VERSION_ARCH.deb}
PORT=${PORT:-2525}
[[ -d /run/systemd/system ]] || { echo "smoke-install.sh: systemd is not running here" >&2; exit 2; }

apt-get install -y "$(realpath "$DEB")"
mkdir -p /etc/systemd/system/ugem.service.d
printf '[Service]\nEnvironment=UGEM_SMTP__LISTEN=127.0.0.1:%s\n' "$PORT" \
  >/etc/systemd/system/ugem.service.d/smoke.conf
systemctl daemon-reload
systemctl restart ugem.service

for _ in $(seq 1 20); do systemctl is-active --quiet ugem.service && break; sleep 0.5; done
systemctl is-active ugem.service
test "$(systemctl show -p StatusErrno --value ugem.service)" = 0
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
read -r -t 5 banner <&3
exec 3<&-
[[ $banner == 220* ]] || { echo "unexpected banner: $banner" >&2; exit 1; }
echo "banner: $banner"
ugem --config /etc/ugem/ugem.toml domain list
id ugem
stat -c '%U:%G %a %n' /var/lib/ugem /etc/ugem/ugem.toml
systemctl stop ugem.service
journalctl -u ugem.service --no-pager -n 20

rm -f /etc/systemd/system/ugem.service.d/smoke.conf
apt-get purge -y ugem
test -d /var/lib/ugem && echo "purged; /var/lib/ugem kept as intended"
