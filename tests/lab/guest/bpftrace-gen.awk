function flush() {
	if (state != "attached") return
	if (family == "tracepoint") {
		# equal=1: only while the thread holds a lock, as the tracer sends them.
		if (equal) print "tracepoint:" hook " /@held[tid] > 0/ { @tp[probe] = count(); }"
		else print "tracepoint:" hook " { @tp[probe] = count(); }"
	} else if (family == "function" || family == "callback") {
		sym = hook
		if (family == "callback") { sub(/.* = /, "", sym); sub(/ .*/, "", sym) }
		if (mech ~ /^fentry/) { e = "kfunc:"; x = "kretfunc:" } else { e = "kprobe:"; x = "kretprobe:" }
		lockfn = sym ~ /^ww_mutex_/ && sym !~ /^ww_mutex_unlock$/
		if (sym ~ /^ww_mutex_unlock$/) {
			if (equal) body = "if (@held[tid] > 0) { @held[tid] = @held[tid] - 1; } @unlock = count();"
			else body = "@unlock = count();"
		} else if (lockfn) {
			# equal=1: the held-lock filter, and a call site (a two-frame stack) per nested lock
			# instead of a whole stack per lock.
			if (equal) body = "if (@held[tid] > 0) { @nested[kstack(2)] = count(); }"
			else body = "@lock[kstack] = count();"
		} else {
			if (equal) body = "@call[probe, kstack(2)] = count();"
			else body = "@call[probe, kstack] = count();"
		}
		print e sym " { " body " }"
		if (equal && lockfn) {
			# The held count the filter needs: a lock returns 0, a trylock 1 on success.
			ok = (sym ~ /trylock/) ? "retval == 1" : "retval == 0"
			# (@lret: bpftrace wants one key shape per map, and @ret is keyed by retval too.)
			print x sym " { if (" ok ") { @held[tid] = @held[tid] + 1; } @lret[probe] = count(); }"
		}
		# kretfunc's retval has the function's type (a pointer, or none for void): count by probe.
		else if (mech ~ /kretprobe/) print x sym " { @ret[probe, retval] = count(); }"
		else if (mech ~ /fexit/) print x sym " { @fret[probe] = count(); }"
	}
	state = ""
}
/"hook":/ { hook = $0; sub(/^[^:]*: *"/, "", hook); sub(/",? *$/, "", hook) }
/"family":/ { family = $0; sub(/^[^:]*: *"/, "", family); sub(/",? *$/, "", family) }
/"mechanism":/ { mech = $0; sub(/^[^:]*: *"/, "", mech); sub(/",? *$/, "", mech) }
/"state":/ { state = $0; sub(/^[^:]*: *"/, "", state); sub(/",? *$/, "", state); flush() }
