#!/usr/bin/env bash
# make demo: drive the pemdir example plugin through the plugin host with the built binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CERTFLEET_PINS_FILE="$work/plugins.lock.json"
bin/certfleet --plugin-dir bin plugins list
bin/certfleet --plugin-dir bin plugins inspect pemdir
