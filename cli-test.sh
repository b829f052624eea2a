#!/usr/bin/env bash
# End-to-end check of CLI mode: the simulator (2 firewalls), `python app.py` and `python clock.py`
# against a temporary data folder. Checks /api/version, the redirect of / to the login page, and
# fresh samples for both firewalls within ~60 s. Every started process is stopped on exit.
#
#   ./cli-test.sh            (PYTHON=path/to/python to choose the interpreter; KEEP=1 keeps the folder)
set -euo pipefail

cd "$(dirname "$0")"
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=$(command -v python3)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/panfm-cli-test.XXXXXX")
DATA=$WORK/data
PIDS=()

fail() {
    echo "cli-test: FAIL: $*" >&2
    for log in "$WORK"/*.log; do
        [[ -f $log ]] || continue
        echo "---- last lines of $(basename "$log") ----" >&2
        tail -n 25 "$log" >&2
    done
    exit 1
}

cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n ${KEEP:-} ]]; then echo "cli-test: kept $WORK" >&2; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

PORT=$(free_port)
PASSWORD="cli-test-$RANDOM-$RANDOM-initial"
NEW_PASSWORD="cli-test-$RANDOM-$RANDOM-changed"
export PANFM_DATA_DIR=$DATA PANFM_PORT=$PORT PANFM_REFRESH_INTERVAL=5 PANFM_ADMIN_PASSWORD=$PASSWORD
export PANFM_BIND_HOST=127.0.0.1
export PANFM_ALLOWED_DEVICE_NETWORKS=127.0.0.0/8  # the simulator listens on loopback
BASE=http://127.0.0.1:$PORT
START=$(date +%s)

echo "cli-test: simulator with 2 firewalls"
"$PY" -m panos_sim --devices 2 --inventory "$WORK/inventory.json" >"$WORK/sim.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do [[ -s $WORK/inventory.json ]] && break; kill -0 "${PIDS[0]}" 2>/dev/null || fail "the simulator exited"; sleep 0.1; done
[[ -s $WORK/inventory.json ]] || fail "the simulator wrote no inventory within 30 s"

"$PY" -m panfm.ops.demo --data-dir "$DATA" register --no-history --inventory "$WORK/inventory.json" >"$WORK/register.log" 2>&1 \
    || fail "python -m panfm.ops.demo register failed"

echo "cli-test: python app.py on port $PORT, python clock.py every 5 s"
"$PY" app.py >"$WORK/web.log" 2>&1 &
PIDS+=($!)
"$PY" clock.py >"$WORK/clock.log" 2>&1 &
PIDS+=($!)

for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$BASE/api/version" 2>/dev/null && break
    kill -0 "${PIDS[1]}" 2>/dev/null || fail "the web (python app.py) exited"
    sleep 0.1
done
version=$(curl -fsS "$BASE/api/version") || fail "/api/version does not answer"
"$PY" -c 'import json, sys; json.loads(sys.argv[1])' "$version" 2>/dev/null || fail "/api/version is not JSON: $version"
echo "cli-test: /api/version $version"

location=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "$BASE/")
[[ $location =~ ^30[1278]\ .*/login ]] || fail "/ does not redirect to the login page (got: $location)"
echo "cli-test: / redirects to the login page"

JAR=$WORK/cookies
login=$(curl -fsS -c "$JAR" -b "$JAR" -H 'Content-Type: application/json' \
    -d "{\"username\": \"admin\", \"password\": \"$PASSWORD\"}" "$BASE/api/login") || fail "login refused"
token=$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["csrf_token"])' "$login")
curl -fsS -o /dev/null -c "$JAR" -b "$JAR" -H 'Content-Type: application/json' -H "X-CSRFToken: $token" \
    -d "{\"old_password\": \"$PASSWORD\", \"new_password\": \"$NEW_PASSWORD\"}" "$BASE/api/change-password" \
    || fail "changing the initial password failed"

# Wait for a sample newer than the start for each of the 2 firewalls.
count_fresh='
import json, sys
from datetime import datetime
doc, start = json.loads(sys.argv[1]), float(sys.argv[2])
fresh = [d for d in doc["devices"] if d.get("sample") and d["sample"].get("timestamp")
         and datetime.fromisoformat(d["sample"]["timestamp"].replace("Z", "+00:00")).timestamp() > start]
print(len(fresh))
'
fresh=0
for _ in $(seq 1 60); do
    overview=$(curl -fsS -b "$JAR" "$BASE/api/overview") || fail "/api/overview failed"
    fresh=$("$PY" -c "$count_fresh" "$overview" "$START")
    [[ $fresh -ge 2 ]] && break
    kill -0 "${PIDS[2]}" 2>/dev/null || fail "the clock exited"
    sleep 1
done
[[ $fresh -ge 2 ]] || fail "no fresh samples for both firewalls within 60 s (fresh: $fresh)"
echo "cli-test: fresh samples for $fresh firewalls"
echo "cli-test: OK"
