#!/bin/sh
# Installs the Debian bookworm packages Pond needs to build, test and run, or
# the packages named on the command line (bench/deps.sh and mk/images.sh
# use it for theirs). Idempotent and quiet when everything is already there;
# runs `apt-get update` once, only when something is missing.
#
#   sh mk/deps.sh [PACKAGE...]
set -eu

PACKAGES=${*:-"
build-essential pkg-config clang-format libssl-dev
libnng-dev libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev
libpq-dev libuv1-dev libjansson-dev libmicrohttpd-dev libcriterion-dev
postgresql-15 prometheus socat
nodejs npm chromium fonts-wqy-microhei
"}

# node and npm may come from elsewhere (NodeSource's nodejs bundles its own
# npm, which Debian's npm package would conflict with): a working command
# counts as installed.
have_command() {
	case $1 in
	nodejs) command -v node ;;
	npm) command -v npm ;;
	*) false ;;
	esac >/dev/null 2>&1
}

missing=""
for p in $PACKAGES; do
	have_command "$p" && continue
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	"install ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "deps: done"
