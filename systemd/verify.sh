#!/usr/bin/env bash
# verify.sh -- static checks of ugem's systemd files (used by .ci/run).
#
#   bash systemd/verify.sh
#
# Needs systemd-analyze, systemd-sysusers and systemd-tmpfiles (Debian
# package `systemd`), but no running systemd: everything happens in a
# temporary root directory, so it works in containers and CI as well.
#
# 1. systemd-sysusers --root and systemd-tmpfiles --root apply ugem.sysusers
#    and ugem.tmpfiles to the temporary root (syntax, and the user/group the
#    tmpfiles entries need).
# 2. systemd-analyze verify --root checks ugem.service as installed in
#    /etc/systemd/system of that root, with a stub /usr/bin/ugem (verify
#    refuses a unit whose ExecStart= binary does not exist) and the host's
#    unit files (for sysinit.target, network-online.target, ...).
#    verify exits 0 on "..., ignoring" parse warnings, so ANY output is a
#    failure too.
# 3. systemd-analyze security --offline=true prints the exposure score and
#    fails above SECURITY_THRESHOLD (0-100 scale, i.e. 10x the printed score;
#    default 20 = "2.0"). Skipped where this systemd has no --offline (< 250).
#
# Exit status: 0 all checks passed, 1 a check failed, 2 tools missing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
UNIT=$HERE/ugem.service
SYSUSERS=$HERE/ugem.sysusers
TMPFILES=$HERE/ugem.tmpfiles
SECURITY_THRESHOLD=${SECURITY_THRESHOLD:-20}
PATH=$PATH:/usr/sbin:/sbin:/usr/bin:/bin

for tool in systemd-analyze systemd-sysusers systemd-tmpfiles; do
  command -v "$tool" >/dev/null || {
    echo "verify.sh: $tool not found (apt-get install systemd)" >&2
    exit 2
  }
done
for f in "$UNIT" "$SYSUSERS" "$TMPFILES"; do
  [[ -f $f ]] || { echo "verify.sh: missing $f" >&2; exit 1; }
done

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/ugem-verify.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
fail=0

step() { printf '\n== %s\n' "$*"; }

# ------------------------------------------------------------ the temp root
mkdir -p "$ROOT/etc/systemd/system" "$ROOT/usr/bin" "$ROOT/usr/sbin" "$ROOT/usr/lib/systemd"
ln -s usr/bin "$ROOT/bin"
ln -s usr/sbin "$ROOT/sbin"
# the host's units, so that the targets ugem.service refers to resolve
if [[ -d /usr/lib/systemd/system ]]; then
  cp -a /usr/lib/systemd/system "$ROOT/usr/lib/systemd/"
elif [[ -d /lib/systemd/system ]]; then
  cp -a /lib/systemd/system "$ROOT/usr/lib/systemd/"
fi
# the binaries the unit runs: a stub ugem, and the real kill (ExecReload)
printf '#!/bin/sh\nexit 0\n' >"$ROOT/usr/bin/ugem"
kill_bin=$(type -P kill || true)
if [[ -n $kill_bin ]]; then cp "$kill_bin" "$ROOT/usr/bin/kill"; else cp "$ROOT/usr/bin/ugem" "$ROOT/usr/bin/kill"; fi
printf '#!/bin/sh\nexit 1\n' >"$ROOT/usr/sbin/nologin"
chmod 755 "$ROOT/usr/bin/ugem" "$ROOT/usr/bin/kill" "$ROOT/usr/sbin/nologin"
cp "$UNIT" "$ROOT/etc/systemd/system/ugem.service"

# run CMD..., fail if it exits non-zero or prints anything but EXPECTED lines
# (a regex; empty = nothing expected)
check_quiet() {
  local expected=$1 out rc=0
  shift
  out=$("$@" 2>&1) || rc=$?
  [[ -n $out ]] && printf '%s\n' "$out"
  local unexpected
  if [[ -n $expected ]]; then
    unexpected=$(printf '%s\n' "$out" | grep -Ev "$expected" | grep -v '^$' || true)
  else
    unexpected=$out
  fi
  if ((rc != 0)) || [[ -n $unexpected ]]; then
    echo "FAIL (exit $rc${unexpected:+, unexpected output})"
    fail=1
  else
    echo "ok"
  fi
}

# ------------------------------------------------------------ sysusers, tmpfiles
step "systemd-sysusers --root: $(basename "$SYSUSERS")"
check_quiet '^Creating (group|user) .ugem.' systemd-sysusers --root="$ROOT" "$SYSUSERS"
grep -q '^ugem:' "$ROOT/etc/passwd" 2>/dev/null || { echo "FAIL: no ugem user created"; fail=1; }
grep -q '^ugem:' "$ROOT/etc/group" 2>/dev/null || { echo "FAIL: no ugem group created"; fail=1; }

step "systemd-tmpfiles --root --create: $(basename "$TMPFILES")"
check_quiet '' systemd-tmpfiles --root="$ROOT" --create "$TMPFILES"
for d in etc/ugem var/lib/ugem; do
  [[ -d $ROOT/$d ]] || { echo "FAIL: /$d not created"; fail=1; }
done

# ------------------------------------------------------------ the unit
step "systemd-analyze verify: $(basename "$UNIT")"
check_quiet '' systemd-analyze verify --man=no --root="$ROOT" /etc/systemd/system/ugem.service

step "systemd-analyze security --offline: $(basename "$UNIT")"
if systemd-analyze --help 2>&1 | grep -q -- '--offline'; then
  rc=0
  out=$(systemd-analyze security --offline=true --threshold="$SECURITY_THRESHOLD" "$UNIT" 2>&1) || rc=$?
  score=$(printf '%s\n' "$out" | grep -o 'Overall exposure level for ugem.service: .*' || true)
  printf '%s\n' "$out" | grep '✗' || true
  echo "${score:-no score printed}"
  if ((rc != 0)) || [[ -z $score ]]; then
    echo "FAIL: exposure above threshold $SECURITY_THRESHOLD (x10 scale) or no score (exit $rc)"
    fail=1
  else
    echo "ok (threshold $SECURITY_THRESHOLD)"
  fi
else
  echo "skipped: systemd-analyze $(systemd-analyze --version | head -1) has no --offline"
fi

echo
if ((fail)); then
  echo "systemd/verify.sh: FAILED"
  exit 1
fi
echo "systemd/verify.sh: all checks passed"
