# Shell helpers for the lab guest (busybox sh). Sourced by init and by guest.sh.

# ship FILE NAME: send FILE to the host over /dev/ttyS1 as a checksummed base64 frame; the
# host writes it as NAME under the run's files/ directory.
ship() {
	if [ ! -f "$1" ]; then
		echo "LAB: nothing to ship at $1"
		return 1
	fi
	{
		echo "===LAB-BEGIN $2 $(wc -c < "$1" | tr -d ' ') $(sha256sum "$1" | cut -d' ' -f1)"
		base64 "$1"
		echo "===LAB-END $2"
	} > /dev/ttyS1
}

# ship_tree DIR PREFIX: ship every file under DIR, named PREFIX/<path below DIR>.
ship_tree() {
	find "$1" -type f | while read -r f; do
		ship "$f" "$2/${f#$1/}"
	done
}

# wait_ready FILE PID: poll (bounded: 600 x 0.1 s) until FILE exists; fail early if PID died.
wait_ready() {
	i=0
	while [ ! -e "$1" ]; do
		if ! kill -0 "$2" 2>/dev/null; then
			echo "LAB: tracer (pid $2) exited before it was ready"
			return 1
		fi
		i=$((i + 1))
		if [ "$i" -ge 600 ]; then
			echo "LAB: timeout: tracer not ready after 60 s ($1 missing)"
			return 1
		fi
		sleep 0.1
	done
}

# tracer_sync: wait until the boot's tracer processed every event queued so far (a module a
# trigger loaded is then hooked). A no-op without the tracer's control FIFO (--no-tracer).
tracer_sync() {
	[ -p /tmp/lab-ctl ] && [ -p /tmp/lab-ack ] || return 0
	echo sync > /tmp/lab-ctl
	read -r answer < /tmp/lab-ack
	[ "$answer" = synced ] || { echo "LAB: tracer answered sync with: $answer"; return 1; }
}
