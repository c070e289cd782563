#!/bin/sh
# The ssh target's restart command (`restart: sh scripts/restart.sh`), run in the base
# directory's `current` release: stops the service the previous release started (its pid
# is in $SHIPLINE_BASE/shared/app.pid), then starts this release's in the background.
# $PORT, $SHIPLINE_BASE and the environment's secrets (from shared/secrets.env) are set.
set -eu
shared="$SHIPLINE_BASE/shared"
pidfile="$shared/app.pid"
if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
        i=0
        while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
fi
# Detached from the SSH session: its own session, no terminal, output to a log.
nohup setsid ${APP_COMMAND:-python3 app.py} >>"$shared/app.log" 2>&1 </dev/null &
echo $! >"$pidfile"
echo "started $(cat VERSION 2>/dev/null || echo dev) on port $PORT (pid $!)"
