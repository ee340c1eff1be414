#!/bin/sh
# mk/images.sh - `make images`: the Docker engine, the local base image and
# every image of docker-compose.yml.
#
# There is no registry to pull from, so the base image is made here:
# mmdebstrap builds a minimal Debian bookworm and `docker import` loads it as
# pond/base:bookworm. That takes a couple of minutes and is done only when the
# image is missing. Installs docker.io, docker-compose and mmdebstrap when
# they are missing, and starts dockerd in the background when no engine
# answers.
set -eu
cd "$(dirname "$0")/.."

sh mk/deps.sh docker.io docker-compose mmdebstrap curl

if ! docker info >/dev/null 2>&1; then
	echo "images: starting dockerd (log in build/dockerd.log)"
	mkdir -p build
	nohup dockerd >build/dockerd.log 2>&1 &
	i=0
	until docker info >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt 60 ] || { echo "images: dockerd did not start" >&2; exit 1; }
		sleep 1
	done
fi

if ! docker image inspect pond/base:bookworm >/dev/null 2>&1; then
	echo "images: building pond/base:bookworm with mmdebstrap (a few minutes)"
	mmdebstrap --quiet --variant=minbase bookworm - |
		docker import - pond/base:bookworm >/dev/null
fi

docker-compose build --quiet
echo "images: ready"
