#!/bin/sh
# Runs in the lab guest (busybox sh) after lab_example.ko was loaded, while the tracer
# records. Its output comes back in the run's files/user/run.out.
set -e
for i in 1 2 3; do
	echo 1 > /sys/kernel/debug/lab_example/export
done
echo "lab_example: 3 buffers exported, imported and released"
