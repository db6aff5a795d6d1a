#!/usr/bin/env bash
# Run the integration suite against LocalStack on this machine (no Docker needed).
#
#   scripts/localstack-test.sh [extra pytest arguments]
#
# Starts LocalStack with scripts/localstack-host.sh (installing it into .localstack-venv the
# first time), waits until it is healthy, runs `pytest tests/integration -m "not heavy"` with
# TOILKIT_TEST_AWS_ENDPOINT pointing at it, and stops it again by its PID. A LocalStack that
# was already running on the port is used and left running. DynamoDB stays on the suite's
# moto server (tests/conftest.py explains why); tests marked moto_only are skipped.
#
# Environment: LOCALSTACK_PORT (default 4566) and the other settings of localstack-host.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST_SCRIPT="$ROOT/scripts/localstack-host.sh"
PORT="${LOCALSTACK_PORT:-4566}"
PYTEST="$ROOT/.venv/bin/pytest"

[[ -x "$PYTEST" ]] || {
	echo "localstack-test: $PYTEST not found; run \`make install\` first" >&2
	exit 2
}

started_here=0
if "$HOST_SCRIPT" status >/dev/null 2>&1; then
	echo "localstack-test: using the LocalStack already running on port $PORT" >&2
else
	"$HOST_SCRIPT" start
	started_here=1
fi

stop_localstack() {
	if ((started_here)); then
		"$HOST_SCRIPT" stop
	fi
}
trap stop_localstack EXIT

cd "$ROOT"
status=0
TOILKIT_TEST_AWS_ENDPOINT="http://127.0.0.1:$PORT" \
	"$PYTEST" tests/integration -m "not heavy" "$@" || status=$?
exit "$status"
