# The long run (cargo xtask lab --soak MINUTES): the guest side. xtask/src/lab/soak.rs puts
# SOAK_SECONDS, SEGMENT_SECONDS and TRACER_ARGS in front of it.
#
# One tracer for the whole boot, recording segments on command (tracer record --segments):
# `short` is one round of the mix, `soak1`, `soak2`, ... are rounds of the same mix until
# SOAK_SECONDS have passed. After every round the tracer is asked for its `stats` (memory, map fill, events,
# losses) and the line goes to stats.log. Every segment is analysed in the guest (only the
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
# bug patterns and their legal twins, one after the other. Prints how many workloads failed;
# which ones and how go to failures.log.
job() {
	"$@" > /tmp/job.$1.out 2>&1
	rc=$?
	[ $rc -eq 0 ] || echo "round $ROUND: exit $rc: $*: $(tail -n 1 /tmp/job.$1.out)" >> $D/failures.log
	return $rc
}
round() {
	ROUND=$1
	pids=
	# As all-drivers-busy: no program but the master opens qxl's card (the first opener of
	# a card becomes its master, and the flips need it).
	job kms_scanout qxl dumb 4 & pids="$pids $!"
	job fbdev_draw bochs 2 & pids="$pids $!"
	job dumb_faults virtio_gpu 2 2 & pids="$pids $!"
	job dmabuf_fdops vgem 2 2 & pids="$pids $!"
	job vgem_pending virtio_gpu 2 & pids="$pids $!"
	if [ -e /dev/udmabuf ]; then
		job udmabuf_vgem 1 & pids="$pids $!"
	fi
	failed=0
	for p in $pids; do wait $p || failed=$((failed + 1)); done
	# PRIME from vgem into every driver opens every card: after the flips.
	job prime_matrix 2 vgem || failed=$((failed + 1))
	# Bugs that return: the relock scenarios deadlock for real, and each leaves a blocked
	# kernel thread behind (tsc_run_blocker), which over a soak fills the per-thread slots
	# with live owners (a 30-minute run with exporter-map-relock: 1,975 kernel threads).
	for s in importer-map-unlocked fence-wait-under-resv abba-no-ctx \
		clean-i915-style-attach-transaction clean-importer-locked-api \
		clean-opposite-order-transactions; do
		[ -e $S/$s ] && echo 1 > $S/$s
	done
	echo $failed
}

# sample ROUND PHASE: the tracer's own account, and its RSS as the kernel sees it.
sample() {
	rss=$(awk '/^VmRSS/ {print $2}' /proc/$tp/status)
	# Kernel threads alive (busybox ps shows them in brackets): workers come and go with the
	# load, and own per-thread slots while they live.
	kt=$(ps | grep -c '\[')
	echo "t=$(uptime_s) round=$1 phase=$2 guest_rss_kib=$rss guest_kthreads=$kt $(ask stats)" >> $D/stats.log
}

# analyse NAME: the segment's report, then its recording goes (a 30-minute run would not fit
# the guest's memory whole: about 14 MB a minute).
analyse() {
	/bin/tracer analyze --json /out/recs/$1.rec > $D/$1.json 2> $D/$1.analyze.stderr
	echo "$1_analyze=$?" >> $D/tracer.status
	ls -l /out/recs/$1.rec | awk -v s=$1 '{print s "_bytes=" $5}' >> $D/tracer.status
	rm -f /out/recs/$1.rec
}

a=$(ask "start short")
[ "$a" = "started short" ] || { echo "LAB: start short: $a"; exit 1; }
f=$(round 0)
echo "short_failed_workloads=$f" >> $D/tracer.status
a=$(ask stop)
echo "short_events=${a##* }" >> $D/tracer.status
sample 0 short
analyse short

# The soak: segments of at most SEGMENT_SECONDS, each judged like the short run; the same
# tracer process all along.
end=$(awk "BEGIN{print $(uptime_s) + $SOAK_SECONDS}")
n=0
fails=0
events=0
seg=0
while awk "BEGIN{exit !($(uptime_s) < $end)}"; do
	seg=$((seg + 1))
	a=$(ask "start soak$seg")
	[ "$a" = "started soak$seg" ] || { echo "LAB: start soak$seg: $a"; exit 1; }
	seg_end=$(awk "BEGIN{e = $(uptime_s) + $SEGMENT_SECONDS; print (e < $end) ? e : $end}")
	while awk "BEGIN{exit !($(uptime_s) < $seg_end)}"; do
		n=$((n + 1))
		f=$(round $n)
		fails=$((fails + f))
		sample $n soak
		echo "LAB-SOAK round $n"
	done
	a=$(ask stop)
	events=$((events + ${a##* }))
	analyse soak$seg
done
echo "soak_segments=$seg" >> $D/tracer.status
echo "soak_rounds=$n" >> $D/tracer.status
echo "soak_failed_workloads=$fails" >> $D/tracer.status
echo "soak_events=$events" >> $D/tracer.status
sample $n end

kill -INT $tp
wait $tp
echo "tracer_exit=$?" >> $D/tracer.status
ship_tree $D soak
