#!/usr/bin/env bash
# Run LocalStack (localstack-core, the free edition) on this machine without Docker.
#
#   scripts/localstack-host.sh install   create .localstack-venv and install LocalStack into it
#   scripts/localstack-host.sh start     install if needed, start in the background, wait until healthy
#   scripts/localstack-host.sh stop      stop the LocalStack this script started (by its PID file)
#   scripts/localstack-host.sh status    print the health document, exit 1 when it is not up
#   scripts/localstack-host.sh run       run in the foreground (Ctrl-C stops it)
#
# Settings (environment):
#   LOCALSTACK_PORT     port on 127.0.0.1 (default 4566)
#   LOCALSTACK_PYTHON   interpreter for the venv (default python3.11; python3.13 installs 2026.3.0)
#   LOCALSTACK_VENV     the venv (default .localstack-venv in the repository root)
#   LOCALSTACK_WAIT     seconds `start` waits for health (default 120)
#
# What is pinned and why (docs/localstack.md has the details):
#   localstack-core 4.9.2 is the release known to work here on Python 3.11; on 3.13, 2026.3.0.
#   boto3/botocore/awscli are pinned to the versions localstack-core 4.9.2 itself pins, because
#   pip otherwise backtracks through every boto3 release for aws-sam-translator's range.
#   cbor2<6, pyopenssl<25, cryptography<45 and service_identity: the set known to work with
#   these releases (not bisected here). psutil<7 for 4.9.2 only: its DNS module imports a name
#   psutil 7 removed (2026.3.0 needs psutil 7).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${LOCALSTACK_PORT:-4566}"
PYTHON="${LOCALSTACK_PYTHON:-python3.11}"
VENV="${LOCALSTACK_VENV:-$ROOT/.localstack-venv}"
WAIT_SECONDS="${LOCALSTACK_WAIT:-120}"
STATE="$VENV/run"
PID_FILE="$STATE/localstack-$PORT.pid"
LOG_FILE="$STATE/localstack-$PORT.log"
HEALTH_URL="http://127.0.0.1:$PORT/_localstack/health"

COMMON_PINS=("cbor2<6" "pyopenssl<25" "cryptography<45" "service_identity")

log() { echo "localstack-host: $*" >&2; }

pins_for_python() {
	local minor
	minor="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" || {
		log "cannot run $PYTHON; set LOCALSTACK_PYTHON to a Python 3.11 or 3.13 interpreter"
		return 1
	}
	case "$minor" in
	3.11)
		echo "localstack-core[runtime]==4.9.2 boto3==1.40.40 botocore==1.40.40 awscli==1.42.40 psutil<7"
		;;
	3.13)
		echo "localstack-core[runtime]==2026.3.0"
		;;
	*)
		log "no known-good localstack-core for Python $minor (use python3.11 or python3.13)"
		return 1
		;;
	esac
}

install() {
	if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import localstack.runtime.main' 2>/dev/null; then
		return 0
	fi
	local pins
	pins="$(pins_for_python)"
	log "creating $VENV with $PYTHON and installing $pins (takes a few minutes the first time)"
	"$PYTHON" -m venv "$VENV"
	"$VENV/bin/python" -m pip install --quiet --upgrade pip
	# Split on spaces with `read`, not by an unquoted expansion: "[runtime]" would be a glob.
	local -a pin_list
	read -r -a pin_list <<<"$pins"
	"$VENV/bin/python" -m pip install --quiet "${pin_list[@]}" "${COMMON_PINS[@]}"
}

# The environment LocalStack runs with: everything it writes stays under $STATE, nothing
# binds outside 127.0.0.1, and no feature waits on the internet.
localstack_env() {
	mkdir -p "$STATE/filesystem" "$STATE/cache"
	export GATEWAY_LISTEN="127.0.0.1:$PORT"
	# The host name in the URLs it hands out (queue URLs): no public DNS name needed.
	export LOCALSTACK_HOST="127.0.0.1:$PORT"
	export SQS_ENDPOINT_STRATEGY=path
	# No DNS server (it would want port 53), no analytics, no certificate download.
	export DNS_ADDRESS=0
	export DISABLE_EVENTS=1
	export SKIP_SSL_CERT_DOWNLOAD=1
	# Host mode even inside a container, so files go to FILESYSTEM_ROOT, not /var/lib.
	export OVERRIDE_IN_DOCKER=0
	export FILESYSTEM_ROOT="$STATE/filesystem"
	# A private plugin-index cache: plux caches entry points per user, and an index built
	# while the venv was half-installed makes the runtime find no components.
	export XDG_CACHE_HOME="$STATE/cache"
}

is_healthy() {
	"$VENV/bin/python" - "$HEALTH_URL" <<-'PY' 2>/dev/null
		import json, sys, urllib.request
		with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
		    services = json.load(response)["services"]
		sys.exit(0 if services.get("sqs") in ("available", "running") else 1)
	PY
}

running_pid() {
	[[ -f "$PID_FILE" ]] || return 1
	local pid
	pid="$(cat "$PID_FILE")"
	kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

start() {
	install
	if pid="$(running_pid)"; then
		log "already running (pid $pid) on port $PORT"
		return 0
	fi
	if is_healthy; then
		log "something else already serves LocalStack on port $PORT; not starting another"
		return 1
	fi
	localstack_env
	(cd "$STATE" && exec "$VENV/bin/python" -m localstack.runtime.main) >"$LOG_FILE" 2>&1 &
	echo $! >"$PID_FILE"
	local deadline=$((SECONDS + WAIT_SECONDS))
	until is_healthy; do
		if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
			log "LocalStack exited during start-up; its log ($LOG_FILE) ends with:"
			tail -20 "$LOG_FILE" >&2
			rm -f "$PID_FILE"
			return 1
		fi
		if ((SECONDS >= deadline)); then
			log "not healthy after ${WAIT_SECONDS}s; stopping it (log: $LOG_FILE)"
			stop
			return 1
		fi
		sleep 0.5
	done
	log "LocalStack $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("localstack-core"))') is up at http://127.0.0.1:$PORT (pid $(cat "$PID_FILE"), log $LOG_FILE)"
}

stop() {
	local pid
	if ! pid="$(running_pid)"; then
		rm -f "$PID_FILE"
		log "not running (no live PID in $PID_FILE)"
		return 0
	fi
	kill -TERM "$pid"
	local deadline=$((SECONDS + 30))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "pid $pid ignored SIGTERM for 30s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	rm -f "$PID_FILE"
	log "stopped (pid $pid)"
}

status() {
	if is_healthy; then
		"$VENV/bin/python" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' "$HEALTH_URL"
	else
		log "LocalStack is not up at http://127.0.0.1:$PORT"
		return 1
	fi
}

run() {
	install
	localstack_env
	cd "$STATE"
	exec "$VENV/bin/python" -m localstack.runtime.main
}

case "${1:-}" in
install) install ;;
start) start ;;
stop) stop ;;
status) status ;;
run) run ;;
*)
	sed -n '2,9p' "$0" >&2
	exit 2
	;;
esac
