# mk/ports.sh - free loopback ports for the scripts that start servers.
# Sourced (not run) by tests/run.sh, bench/run.sh and tests/compose/run.sh.
#
# Ports come from 20000-29999: below the kernel's ephemeral range (32768 and
# up), which is where bind-to-port-0 ports and every outgoing connection come
# from, so a port picked here never collides with those.

# port_in_use reports whether any IPv4 or IPv6 TCP socket has local port $1.
# /proc is always there, unlike ss or netstat on a minimal machine.
port_in_use() {
	hex=$(printf '%04X' "$1")
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
		awk -v p=":$hex" 'NR > 1 && substr($2, length($2) - 4) == p { f = 1 }
			END { exit !f }'
}

# free_port sets $port to a free port not handed out before in this shell
# (ports are often bound only later, so /proc alone cannot tell two picks
# apart). Call it directly, not in $(...), so that it remembers.
taken_ports=" "
free_port() {
	while :; do
		n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
		p=$((20000 + n % 10000))
		case $taken_ports in *" $p "*) continue ;; esac
		port_in_use "$p" || break
	done
	taken_ports="$taken_ports$p "
	port=$p
}
