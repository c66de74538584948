# The long run (cargo xtask lab --soak MINUTES): the guest side. xtask/src/lab/soak.rs puts
# SOAK_SECONDS and TRACER_ARGS in front of it.
#
# One tracer for the whole boot, recording segments on command (tracer record --segments):
# `short` is one round of the mix, `soak` is rounds of the same mix until SOAK_SECONDS have
# passed. After every round the tracer is asked for its `stats` (memory, map fill, events,
# losses) and the line goes to stats.log. Both segments are analysed in the guest (only the
# JSON reports and the logs are shipped: a long recording would take long over the serial
# channel).
. /lab/lib.sh
uptime_s() { cut -d' ' -f1 /proc/uptime; }
D=/out/soak
mkdir -p $D /out/recs
for m in bochs qxl virtio_gpu; do insmod /lib/mods/$m.ko 2>/dev/null; done
S=/sys/kernel/debug/tracer_scenarios
t0=$(uptime_s)
/bin/tracer record $TRACER_ARGS --segments /out/recs --control $LAB_CTL --ack $LAB_ACK 2> $D/tracer.stderr &
tp=$!
if ! tracer_ready $tp; then
	cat $D/tracer.stderr
	exit 1
fi
echo "ready_after=$(awk "BEGIN{print $(uptime_s) - $t0}")" > $D/tracer.status

# One round of the mix: real drivers' traffic (PRIME between drivers, mmap faults, CPU
# access syncs, fences, KMS scanout and fbdev) at the same time, then the test module's
# bug patterns and their legal twins, one after the other.
round() {
	pids=
	prime_matrix 2 vgem > /dev/null 2>&1 & pids="$pids $!"
	dmabuf_fdops vgem 2 2 > /dev/null 2>&1 & pids="$pids $!"
	dumb_faults virtio_gpu 2 2 > /dev/null 2>&1 & pids="$pids $!"
	kms_scanout bochs-drm vgem 4 > /dev/null 2>&1 & pids="$pids $!"
	vgem_pending vgem 2 > /dev/null 2>&1 & pids="$pids $!"
	fbdev_draw qxl 2 > /dev/null 2>&1 & pids="$pids $!"
	if [ -e /dev/udmabuf ]; then
		udmabuf_vgem 1 > /dev/null 2>&1 & pids="$pids $!"
	fi
	failed=0
	for p in $pids; do wait $p || failed=$((failed + 1)); done
	for s in exporter-map-relock importer-map-unlocked fence-wait-under-resv \
		clean-i915-style-attach-transaction clean-importer-locked-api \
		clean-opposite-order-transactions; do
		[ -e $S/$s ] && echo 1 > $S/$s
	done
	echo $failed
}

# sample ROUND PHASE: the tracer's own account, and its RSS as the kernel sees it.
sample() {
	rss=$(awk '/^VmRSS/ {print $2}' /proc/$tp/status)
	echo "t=$(uptime_s) round=$1 phase=$2 guest_rss_kib=$rss $(ask stats)" >> $D/stats.log
}

a=$(ask "start short")
[ "$a" = "started short" ] || { echo "LAB: start short: $a"; exit 1; }
f=$(round)
echo "short_failed_workloads=$f" >> $D/tracer.status
a=$(ask stop)
echo "short_events=${a##* }" >> $D/tracer.status
sample 0 short

a=$(ask "start soak")
[ "$a" = "started soak" ] || { echo "LAB: start soak: $a"; exit 1; }
end=$(awk "BEGIN{print $(uptime_s) + $SOAK_SECONDS}")
n=0
fails=0
while awk "BEGIN{exit !($(uptime_s) < $end)}"; do
	n=$((n + 1))
	f=$(round)
	fails=$((fails + f))
	sample $n soak
	echo "LAB-SOAK round $n"
done
echo "soak_rounds=$n" >> $D/tracer.status
echo "soak_failed_workloads=$fails" >> $D/tracer.status
a=$(ask stop)
echo "soak_events=${a##* }" >> $D/tracer.status
sample $n end

kill -INT $tp
wait $tp
echo "tracer_exit=$?" >> $D/tracer.status
for s in short soak; do
	/bin/tracer analyze --json /out/recs/$s.rec > $D/$s.json 2> $D/$s.analyze.stderr
	echo "${s}_analyze=$?" >> $D/tracer.status
	ls -l /out/recs/$s.rec | awk -v s=$s '{print s "_bytes=" $5}' >> $D/tracer.status
done
ship_tree $D soak
