#!/bin/sh
# pond-setup: the one-shot `setup` service of docker-compose.yml.
#
# Migrates the schema, then makes sure the gateway simulator has a publisher
# token in /var/lib/pond/gateway.token (the volume it shares with the
# gateway-sim container): a token is shown only once and stored only as a
# hash, so it is written there when its publisher is made. A token whose
# publisher the store no longer knows (the database volume was dropped) is
# replaced.
set -eu
pond migrate
dir=/var/lib/pond
file=$dir/gateway.token
name=$(cat "$dir/gateway.name" 2>/dev/null || true)
if [ -s "$file" ] && [ -n "$name" ] &&
	pond publishers list | awk -v n="$name" '$2 == n && $4 == "-" { f = 1 }
		END { exit !f }'; then
	echo "setup: the gateway simulator's token is in place ($name)"
	exit 0
fi
name=gateway-sim-$(date +%s)
pond publishers add "$name" >"$file.new"
mv "$file.new" "$file"
echo "$name" >"$dir/gateway.name"
echo "setup: publisher $name made for the gateway simulator"
