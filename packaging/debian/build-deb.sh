#!/usr/bin/env bash
# build-deb.sh -- builds the Debian package ugem_<version>_<arch>.deb from
# this repository, with dpkg-deb only (no debhelper, no network).
#
#   bash packaging/debian/build-deb.sh [OUT_DIR]        (default: target/debian)
#
# UGEM_BIN=/path/to/ugem packs an already built binary (the tests pack the
# debug build); by default `cargo build --release --locked` builds one.
#
# The package holds: /usr/bin/ugem; the systemd unit, sysusers and tmpfiles
# entries from systemd/; /etc/ugem/ugem.toml (a conffile: data under
# /var/lib/ugem, SMTP on port 25); man pages and bash/zsh/fish completions
# generated from the CLI definition (`ugem generate`); the README and the
# design documents under /usr/share/doc/ugem. The maintainer scripts create
# the ugem user, enable and start the service under systemd, and never
# remove /var/lib/ugem (it holds the queue: mail is not deleted by a purge).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$ROOT/target/debian}
PATH=$PATH:/usr/sbin:/sbin

for tool in dpkg-deb dpkg gzip objdump install; do
  command -v "$tool" >/dev/null || {
    echo "build-deb.sh: $tool not found (apt-get install dpkg-dev binutils gzip)" >&2
    exit 2
  }
done

if [[ -n ${UGEM_BIN:-} ]]; then
  BIN=$UGEM_BIN
else
  (cd "$ROOT" && cargo build --release --locked --bin ugem)
  BIN=$ROOT/target/release/ugem
fi
[[ -x $BIN ]] || { echo "build-deb.sh: no executable at $BIN" >&2; exit 1; }

# The version is the binary's own (`ugem 0.1.0`), so the package cannot
# claim a version it does not contain.
VERSION=$("$BIN" --version | awk '{print $2}')
ARCH=$(dpkg --print-architecture)
# The newest glibc symbol version the binary needs is the libc6 it depends on
# (what dpkg-shlibdeps would find for a binary that links only libc).
GLIBC=$(objdump -T "$BIN" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
P=$STAGE/pkg

# Stripped, as Debian ships binaries (the symbols stay in the build tree).
install -D -m0755 -s "$BIN" "$P/usr/bin/ugem"
install -D -m0644 "$ROOT/systemd/ugem.service" "$P/usr/lib/systemd/system/ugem.service"
install -D -m0644 "$ROOT/systemd/ugem.sysusers" "$P/usr/lib/sysusers.d/ugem.conf"
install -D -m0644 "$ROOT/systemd/ugem.tmpfiles" "$P/usr/lib/tmpfiles.d/ugem.conf"
install -D -m0640 "$HERE/ugem.toml" "$P/etc/ugem/ugem.toml"
install -d -m0750 "$P/etc/ugem/tls"

# Man pages and completions from the CLI definition itself.
"$BIN" generate man --out "$STAGE/man"
install -d "$P/usr/share/man/man1"
for page in "$STAGE"/man/*.1; do
  gzip -9n -c "$page" >"$P/usr/share/man/man1/$(basename "$page").gz"
done
install -d "$P/usr/share/bash-completion/completions" \
  "$P/usr/share/zsh/vendor-completions" "$P/usr/share/fish/vendor_completions.d"
"$BIN" generate completions bash >"$P/usr/share/bash-completion/completions/ugem"
"$BIN" generate completions zsh >"$P/usr/share/zsh/vendor-completions/_ugem"
"$BIN" generate completions fish >"$P/usr/share/fish/vendor_completions.d/ugem.fish"

DOC=$P/usr/share/doc/ugem
install -D -m0644 "$ROOT/README.md" "$DOC/README.md"
for d in "$ROOT"/docs/*.md; do install -m0644 "$d" "$DOC/"; done
install -m0644 "$HERE/copyright" "$DOC/copyright"
install -m0644 "$ROOT/config/ugem.toml" "$DOC/ugem.toml.example"
# The shipped working-day calendar (built in): a copy to start [registration] calendar from.
install -D -m0644 "$ROOT/data/calendar/kz.toml" "$DOC/calendar/kz.toml"
printf 'ugem (%s) unstable; urgency=medium\n\n  * Built from the ugem repository by packaging/debian/build-deb.sh.\n\n -- ugem maintainers <postmaster@gateway.example>  %s\n' \
  "$VERSION" "$(date -R -u -d @"${SOURCE_DATE_EPOCH:-$(date +%s)}")" |
  gzip -9n >"$DOC/changelog.Debian.gz"

install -d "$P/DEBIAN"
for s in postinst prerm postrm; do install -m0755 "$HERE/$s" "$P/DEBIAN/$s"; done
echo /etc/ugem/ugem.toml >"$P/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$P" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@GLIBC@/$GLIBC/" \
  -e "s/@SIZE@/$SIZE/" "$HERE/control.in" >"$P/DEBIAN/control"

mkdir -p "$OUT"
DEB=$OUT/ugem_${VERSION}_${ARCH}.deb
# xz as Debian ships; DEB_COMPRESSION=gzip is quicker for tests.
dpkg-deb --root-owner-group "-Z${DEB_COMPRESSION:-xz}" --build "$P" "$DEB" >/dev/null
echo "$DEB"
