# The overhead bench's guest side (cargo xtask lab --bench). xtask/src/lab/bench.rs puts
# the run's parameters in front of it: ITERS, PAIR_ITERS, BIG_ITERS, FIRST, LAST, EXTRAS, CONFIGS and
# /tmp/bpftrace-gen.awk.
. /lab/lib.sh
uptime_s() { cut -d' ' -f1 /proc/uptime; }
B=/sys/kernel/debug/tracer_bench
D=/out/bench
mkdir -p $D
if [ ! -e $B/run ]; then
	echo "LAB: tracer_bench is not loaded"
	exit 1
fi
if command -v bpftrace >/dev/null 2>&1; then
	mountpoint -q /sys/kernel/tracing || mount -t tracefs none /sys/kernel/tracing 2>/dev/null
	# The same hooks as the tracer attaches here (BPFTRACE_GEN in xtask/src/lab/bench.rs).
	/bin/tracer probes --json > /tmp/probes.json 2> $D/probes.stderr
	{
		echo 'BEGIN { system("touch /tmp/ready.b"); }'
		awk -f /tmp/bpftrace-gen.awk /tmp/probes.json
	} > $D/equivalent.bt
	# Equal work (bpftrace_equal): the tracer's held-lock filter, call sites instead of stacks.
	{
		echo 'BEGIN { system("touch /tmp/ready.b"); }'
		awk -v equal=1 -f /tmp/bpftrace-gen.awk /tmp/probes.json
	} > $D/equal.bt
	# Lines with a probe body, less the BEGIN line.
	echo "bpftrace_probes=$(( $(grep -c '{' $D/equivalent.bt) - 1 ))" > $D/bpftrace.info
	ship_tree $D bench
else
	CONFIGS=$(echo $CONFIGS | sed 's/ *bpftrace[a-z_]*//g')
	echo "LAB: no bpftrace in this guest: that configuration is skipped"
fi
# Keep the static keys of the hot tracepoints the tracer attaches to switched on for the whole
# boot (ftrace events enabled, its buffer off): otherwise every tracing run patches sites that
# other CPUs execute all the time (mmap_lock, sys_exit), and under TCG that INT3 patching has
# crashed guests (docs/overhead.md). The loops hit none of these tracepoints.
T=/sys/kernel/tracing
if [ -e $T/tracing_on ]; then
	echo 0 > $T/tracing_on
	for e in mmap_lock raw_syscalls/sys_exit lock/contention_begin lock/contention_end \
		dma_fence/dma_fence_wait_start dma_fence/dma_fence_wait_end; do
		[ -e $T/events/$e/enable ] && echo 1 > $T/events/$e/enable
	done
fi
# Warm-up (caches, first allocations), not measured.
echo 1000 > $B/run || exit 1

# run_loops FILE: the loops of MASK into FILE. resv_pair, the shortest, runs PAIR_FACTOR (xtask/src/lab/bench.rs) times the
# iterations of the others: at 20,000 it took ~25 ms, and one timer tick or TCG flush in it
# moved its figure by half.
MASK=31
PRIME=0
run_loops() {
	: > $1
	if [ $PRIME = 1 ]; then
		# One importer_cycle iteration: its map call needs the kept-back lock of the
		# loop's thread (this shell), whose later lone locks then read their call sites.
		echo 4 > $B/loops && echo 1 > $B/run || return 1
	fi
	if [ $((MASK & 1)) -ne 0 ]; then
		echo 1 > $B/loops && echo $PAIR_ITERS > $B/run && cat $B/result >> $1 || return 1
	fi
	if [ $((MASK & 6)) -ne 0 ]; then
		echo $((MASK & 6)) > $B/loops && echo $ITERS > $B/run && cat $B/result >> $1 || return 1
	fi
	# ww_txn64: one operation is a 64-object transaction, run BIG_ITERS times.
	if [ $((MASK & 8)) -ne 0 ]; then
		echo 8 > $B/loops && echo $BIG_ITERS > $B/run && cat $B/result >> $1 || return 1
	fi
	# workload: real drivers' dma-buf traffic from user space, timed whole. One operation is
	# one iteration of each: a udmabuf buffer imported by vgem (attach, map, mmap, sync
	# ioctls: prime_matrix), a vgem buffer's fd operations from two threads (dmabuf_fdops)
	# and a vgem fence attached and signalled (vgem_fence).
	if [ $((MASK & 16)) -ne 0 ]; then
		w0=$(uptime_s)
		prime_matrix $WL_ITERS udmabuf vgem > /dev/null 2>&1 || return 1
		dmabuf_fdops vgem $WL_ITERS 2 > /dev/null 2>&1 || return 1
		vgem_fence $WL_ITERS > /dev/null 2>&1 || return 1
		w1=$(uptime_s)
		awk "BEGIN { t = ($w1 - $w0) * 1e9; printf \"workload ns_per_op=%d iters=$WL_ITERS total_ns=%d\\n\", t / $WL_ITERS, t }" >> $1
	fi
}

run_none() {
	PRIME=0
	run_loops $D/r$1.none || { echo "LAB: bench run failed"; return 1; }
	ship $D/r$1.none bench/r$1.none
}

# run_traced REP CONFIG: start the tracing process, wait until it is attached, run the loops,
# stop it with SIGINT.
run_traced() {
	f=$D/r$1.$2
	rm -f /tmp/ready.b /tmp/b.rec
	t0=$(uptime_s)
	PRIME=0
	case $2 in
	floor) /bin/tracer record --floor -o /tmp/b.rec --ready-file /tmp/ready.b 2> $f.stderr & ;;
	tracer) /bin/tracer record -o /tmp/b.rec --ready-file /tmp/ready.b 2> $f.stderr & ;;
	tracer_sites) PRIME=1; /bin/tracer record -o /tmp/b.rec --ready-file /tmp/ready.b 2> $f.stderr & ;;
	lone_sites) /bin/tracer record --lone-sites -o /tmp/b.rec --ready-file /tmp/ready.b 2> $f.stderr & ;;
	floor_kprobe) /bin/tracer record --floor --lock-kprobes -o /tmp/b.rec --ready-file /tmp/ready.b 2> $f.stderr & ;;
	tracer_kprobe) /bin/tracer record --lock-kprobes -o /tmp/b.rec --ready-file /tmp/ready.b 2> $f.stderr & ;;
	floor_allkprobe) /bin/tracer record --floor --hooks kprobes -o /tmp/b.rec --ready-file /tmp/ready.b 2> $f.stderr & ;;
	tracer_allkprobe) /bin/tracer record --hooks kprobes -o /tmp/b.rec --ready-file /tmp/ready.b 2> $f.stderr & ;;
	profile_floor) /bin/tracer record --floor --prog-stats -o /tmp/b.rec --ready-file /tmp/ready.b 2> $f.stderr & ;;
	profile*) /bin/tracer record --prog-stats -o /tmp/b.rec --ready-file /tmp/ready.b 2> $f.stderr & ;;
	ring16) /bin/tracer record --ring-mib 16 -o /tmp/b.rec --ready-file /tmp/ready.b 2> $f.stderr & ;;
	heaviest) /bin/tracer record -o /tmp/b.rec --ready-file /tmp/ready.b 2> $f.stderr & ;;
	bpftrace) bpftrace --unsafe $D/equivalent.bt > /tmp/b.rec 2> $f.stderr & ;;
	bpftrace_equal) bpftrace --unsafe $D/equal.bt > /tmp/b.rec 2> $f.stderr & ;;
	esac
	tp=$!
	# Up to 5 minutes: a slow start is a figure of the table, not a failed run.
	if ! wait_ready /tmp/ready.b $tp 3000; then
		echo "ready=failed" > $f
		kill -KILL $tp 2>/dev/null
		wait $tp
		ship_run $f
		return 1
	fi
	t1=$(uptime_s)
	if run_loops $f; then
		t2=$(uptime_s)
	else
		t2=$(uptime_s)
		echo "LAB: bench run failed"
		echo "run=failed" > $f
	fi
	echo "ready_after=$(awk "BEGIN{print $t1 - $t0}")" >> $f
	echo "loops_took=$(awk "BEGIN{print $t2 - $t1}")" >> $f
	# utime and stime (all threads, USER_HZ ticks) just before the stop.
	echo "cpu_ticks_before_stop=$(awk '{print $14 + $15}' /proc/$tp/stat)" >> $f
	echo "tracer_wall=$(awk "BEGIN{print $(uptime_s) - $t0}")" >> $f
	kill -INT $tp
	ts=$(uptime_s)
	i=0
	while kill -0 $tp 2>/dev/null && [ "$i" -lt 300 ]; do
		i=$((i + 1))
		sleep 0.1
	done
	if kill -0 $tp 2>/dev/null; then
		echo "sigint=ignored" >> $f
		kill -KILL $tp
	fi
	wait $tp
	echo "tracer_exit=$?" >> $f
	echo "stop_after=$(awk "BEGIN{print $(uptime_s) - $ts}")" >> $f
	echo "recording_bytes=$(wc -c < /tmp/b.rec 2>/dev/null || echo 0)" >> $f
	rm -f /tmp/b.rec
	ship_run $f
}

# Each run's files go to the host as soon as it ends: a guest that dies later (see
# docs/overhead.md on text patching under TCG) keeps what it measured.
ship_run() {
	ship $1 bench/${1##*/}
	[ -f $1.stderr ] && ship $1.stderr bench/${1##*/}.stderr
}

r=$FIRST
while [ $r -le $LAST ]; do
	echo "LAB: bench repetition $r"
	# Rotate the order: repetition r starts with configuration (r-1) mod n.
	set -- $CONFIGS
	k=$(( (r - 1) % $# ))
	while [ $k -gt 0 ]; do
		c=$1; shift; set -- "$@" $c
		k=$((k - 1))
	done
	for c in "$@"; do
		if [ $c = none ]; then run_none $r; else run_traced $r $c; fi
	done
	r=$((r + 1))
done
[ $EXTRAS = 1 ] || exit 0
# Where the tracer's time goes: one more run with the kernel's BPF statistics on (they add
# two clock reads per program run, so this run is not in the table).
echo "LAB: bench profile runs (tracer --prog-stats)"
run_traced 0 profile
# The same for resv_pair alone: the path of an un-nested lock/unlock pair.
MASK=1
run_traced 0 profile_pair
MASK=31
# Which empty programs the floor runs: the same hooks and mechanisms as the tracer's.
run_traced 0 profile_floor
# What a smaller ring buffer than the default loses at this rate.
echo "LAB: bench run with a 16 MiB ring buffer"
run_traced 0 ring16
# The losses of the heaviest loop alone, at the default ring buffer.
MASK=4
echo "LAB: bench run of importer_cycle alone"
run_traced 0 heaviest
MASK=31
