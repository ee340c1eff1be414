#!/bin/sh
# Installs the Debian packages `make bench` needs on top of mk/deps.sh:
# PgQ for PostgreSQL 15 (one of the ingest benchmark's anchors). Quiet when
# they are there; runs `apt-get update` once, only when something is missing.
set -eu

PACKAGES="postgresql-15-pgq3"

missing=""
for p in $PACKAGES; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	"install ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

echo "bench deps: installing$missing"
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "bench deps: done"
