#!/usr/bin/env bash
# make demo: start the simulators (a CA and simulated devices), then let certfleet enroll every
# certificate, show that a second run has nothing to do, force one renewal and print the status.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
sim_pid=
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

ca=${DEMO_CA:-scm} # DEMO_SCM_API=enrollment: through the SCM REST Enrollment API
bin/certfleet-sim --out "$work" --ca "$ca" --scm-api "${DEMO_SCM_API:-admin}" --ready-file "$work/ready.json" >/dev/null &
sim_pid=$!
for _ in $(seq 1 100); do [ -s "$work/ready.json" ] && break; sleep 0.1; done
[ -s "$work/ready.json" ] || { echo "certfleet-sim did not start" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/sim.env"
export CERTFLEET_CONFIG="$work/certfleet.yaml" CERTFLEET_PLUGIN_DIR="$PWD/bin" CERTFLEET_LOG_LEVEL=warn

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "simulators up ($ca CA); configuration written to $CERTFLEET_CONFIG"
bin/certfleet validate
step "certfleet plan"
bin/certfleet plan
step "certfleet run: enroll everything"
bin/certfleet run
step "certfleet run again: nothing is due"
bin/certfleet run
first=$(bin/certfleet status --output json | sed -n 's/.*"certificate": "\([^"]*\)".*/\1/p' | head -1)
step "certfleet run --force $first: a renewal with a new key"
bin/certfleet run --force "$first"
step "certfleet verify: what every known endpoint serves, over TLS"
bin/certfleet verify
step "certfleet status"
bin/certfleet status
