# Attach/detach cycles (cargo xtask lab --cycles N): the guest side. xtask/src/lab/cycles.rs
# puts CYCLES and TRACER_ARGS in front of it.
#
# Starting and stopping the tracer switches the static keys of the tracepoints it attaches
# (mmap_lock, sys_exit, lock contention, dma_fence, module) and arms/disarms its function
# hooks: the kernel rewrites code that other CPUs are executing. To make that race as likely
# as it can be, the other vCPU is kept busy all along with what runs those sites: processes
# forking, mapping, exiting (mmap_lock, sys_exit, process exit) and dma-buf traffic. Each cycle
# says `LAB-CYCLE <i> <status>` on the console, so a guest that dies mid-run still tells the
# host how far it got.
. /lab/lib.sh
D=/out/cycles
mkdir -p $D
rm -f /tmp/stop-load
# The loads run on the second vCPU at the lowest priority (the tracer starts on the first),
# and count their iterations: the host shows the counts, so a load that never ran cannot pass
# for one that did.
command -v taskset > /dev/null && command -v renice > /dev/null || { echo "LAB: no taskset/renice"; exit 1; }
# Load 1: short-lived processes (fork, exec, mmap, brk, exit).
taskset -c 1 sh -c 'n=0; while [ ! -e /tmp/stop-load ]; do cat /proc/self/stat > /dev/null; n=$((n + 1)); echo $n > /tmp/load1.n; done' &
load1=$!
# Load 2: dma-buf traffic (vgem exports used by two threads: locks, maps, fences, releases).
taskset -c 1 sh -c 'n=0; while [ ! -e /tmp/stop-load ]; do dmabuf_fdops vgem 1 2 > /dev/null 2>&1; n=$((n + 1)); echo $n > /tmp/load2.n; done' &
load2=$!
renice -n 19 -p $load1 $load2 > /dev/null
ok=0
# Not `i`: lib.sh's wait_ready counts in it.
cycle=1
rc=0
while [ $cycle -le $CYCLES ]; do
	rm -f /tmp/ready.c /tmp/c.rec
	t0=$(cut -d' ' -f1 /proc/uptime)
	taskset -c 0 /bin/tracer record $TRACER_ARGS -o /tmp/c.rec --ready-file /tmp/ready.c 2> $D/tracer.stderr &
	pid=$!
	# Start-up is slower here than in an idle guest: the loads share the emulator's thread.
	if ! wait_ready /tmp/ready.c $pid 3000; then
		echo "LAB-CYCLE $cycle not-ready"
		rc=1
		break
	fi
	t1=$(cut -d' ' -f1 /proc/uptime)
	# Traffic under the tracer, in the foreground: what a user's run records.
	vgem_fence 2 > $D/trigger.out 2>&1 || echo "LAB: cycle $cycle: vgem_fence failed"
	kill -INT $pid
	wait $pid
	st=$?
	t2=$(cut -d' ' -f1 /proc/uptime)
	echo "$cycle status=$st start=$t0 ready=$t1 stopped=$t2" >> $D/cycles.log
	if [ $st -ne 0 ]; then
		echo "LAB-CYCLE $cycle tracer-exit-$st"
		cp $D/tracer.stderr $D/tracer.$cycle.stderr
		rc=1
		break
	fi
	echo "LAB-CYCLE $cycle ok"
	ok=$((ok + 1))
	cycle=$((cycle + 1))
done
touch /tmp/stop-load
wait $load1 $load2
echo "cycles_ok=$ok" > $D/summary
echo "load_processes=$(cat /tmp/load1.n 2>/dev/null || echo 0) load_dmabuf_runs=$(cat /tmp/load2.n 2>/dev/null || echo 0)" >> $D/summary
ship_tree $D cycles
exit $rc
