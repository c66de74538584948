#!/bin/sh
# Entry point of the payload: runs in /lab/user in the guest, under the tracer.
./suite
