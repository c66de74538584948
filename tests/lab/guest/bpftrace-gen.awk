function flush() {
	if (state != "attached") return
	if (family == "tracepoint") {
		print "tracepoint:" hook " { @tp[probe] = count(); }"
	} else if (family == "function" || family == "callback") {
		sym = hook
		if (family == "callback") { sub(/.* = /, "", sym); sub(/ .*/, "", sym) }
		if (mech ~ /^fentry/) { e = "kfunc:"; x = "kretfunc:" } else { e = "kprobe:"; x = "kretprobe:" }
		if (sym ~ /^ww_mutex_unlock$/) body = "@unlock = count();"
		else if (sym ~ /^ww_mutex_/) body = "@lock[kstack] = count();"
		else body = "@call[probe, kstack] = count();"
		print e sym " { " body " }"
		# kretfunc's retval has the function's type (a pointer, or none for void): count by probe.
		if (mech ~ /kretprobe/) print x sym " { @ret[probe, retval] = count(); }"
		else if (mech ~ /fexit/) print x sym " { @fret[probe] = count(); }"
	}
	state = ""
}
/"hook":/ { hook = $0; sub(/^[^:]*: *"/, "", hook); sub(/",? *$/, "", hook) }
/"family":/ { family = $0; sub(/^[^:]*: *"/, "", family); sub(/",? *$/, "", family) }
/"mechanism":/ { mech = $0; sub(/^[^:]*: *"/, "", mech); sub(/",? *$/, "", mech) }
/"state":/ { state = $0; sub(/^[^:]*: *"/, "", state); sub(/",? *$/, "", state); flush() }
