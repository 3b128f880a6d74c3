#!/usr/bin/env bash
# make dist-check: what CI checks of a release, for linux/amd64 —
#   every binary static; SHA256SUMS and its minisign signature verify;
#   `plugins install` checks the signature (and refuses a bundle that is not the signed one);
#   the Citrix bundle unpacked alone into an empty directory: its files, its SHA256SUMS, `validate`
#   on its sample, then a full enroll against certfleet-sim with the bundle's binaries only;
#   an upgrade: bundle v1 installed and run, bundle v2 (a changed plugin) installed, run again:
#   no refusal, the pin follows, nothing enrolled again.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$PWD/.tools/bin
work=$(mktemp -d)
sim_pid=
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
fail() { echo "dist-check: FAIL: $*" >&2; exit 1; }

v1=0.0.1 v2=0.0.2 target=linux_amd64
dist() { # version out [extra flags]
  go run ./scripts/dist -version "$1" -out "$2" -targets linux/amd64 -nfpm "$tools/nfpm" \
    -cyclonedx-gomod "$tools/cyclonedx-gomod" -minisign "$tools/minisign" "${@:3}"
}

step "build release $v1 (signed with a key made for this check)"
"$tools/minisign" -G -W -p "$work/key.pub" -s "$work/key.sec" >/dev/null
dist "$v1" "$work/v1" -signing-key "$work/key.sec"

step "SHA256SUMS and its signature"
(cd "$work/v1" && "$tools/minisign" -V -p "$work/key.pub" -m SHA256SUMS && sha256sum -c --quiet SHA256SUMS) || fail "checksums or signature"
for want in "certfleet_${v1}_${target}.tar.gz" "certfleet-citrix-nitro_${v1}_${target}.tar.gz" \
  "certfleet-paloalto-panos_${v1}_${target}.tar.gz" "certfleet-f5-bigip_${v1}_${target}.tar.gz" \
  "certfleet_${v1}_amd64.deb" "certfleet-${v1}-1.x86_64.rpm" "sbom/certfleet_${v1}_${target}.cdx.json"; do
  grep -q "  $want\$" "$work/v1/SHA256SUMS" || fail "SHA256SUMS does not list $want"
done

step "every binary is static"
for bin in "$work/v1/.build/$target"/certfleet*; do
  [ -x "$bin" ] || continue
  file "$bin" | grep -q "statically linked" || fail "$(file "$bin")"
  if ldd "$bin" >/dev/null 2>&1; then fail "ldd finds shared libraries in $bin"; fi
  echo "static: $(basename "$bin")"
done

step "the Citrix bundle, unpacked alone into an empty directory"
mkdir "$work/citrix"
tar xzf "$work/v1/certfleet-citrix-nitro_${v1}_${target}.tar.gz" -C "$work/citrix"
bundle="$work/citrix/certfleet-citrix-nitro_${v1}_${target}"
want="LICENSE? README.md SHA256SUMS certfleet certfleet-plugin-citrix-nitro certfleet.yaml completions/_certfleet completions/certfleet.bash completions/certfleet.fish man/certfleet.1 systemd/certfleet.service systemd/certfleet.timer systemd/certfleet-daemon.service"
got=$(cd "$bundle" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')
for f in $want; do
  case "$f" in *\?) continue;; esac
  case " $got " in *" $f "*) ;; *) fail "bundle lacks $f (has: $got)";; esac
done
(cd "$bundle" && sha256sum -c --quiet SHA256SUMS) || fail "bundle SHA256SUMS"
"$bundle/certfleet" version | grep -q "certfleet $v1 " || fail "certfleet does not report $v1"
# Its own pins file: validate starts the plugin, and must not meet pins this machine keeps elsewhere.
"$bundle/certfleet" --config "$bundle/certfleet.yaml" --pins-file "$work/validate-pins.json" validate

step "full enroll against certfleet-sim, from the unpacked v1 files alone"
bin/certfleet-sim --out "$work/sim" --vendors citrix-nitro --ready-file "$work/ready.json" >/dev/null &
sim_pid=$!
for _ in $(seq 1 200); do [ -s "$work/ready.json" ] && break; sleep 0.1; done
[ -s "$work/ready.json" ] || fail "certfleet-sim did not start"
# Only the simulator's variables: no plugin directory, no PATH with bin/ in it.
# shellcheck disable=SC1091
. "$work/sim/sim.env"
sim_env=()
for v in $(sed -n 's/^export \([A-Za-z0-9_]*\)=.*/\1/p' "$work/sim/sim.env"); do sim_env+=("$v=${!v}"); done
mkdir -p "$work/usr/bin" "$work/plugins"
cf() { env -i HOME="$work" PATH=/usr/bin:/bin "${sim_env[@]}" CERTFLEET_PLUGIN_DIR="$work/plugins" "$work/usr/bin/certfleet" --config "$work/sim/certfleet.yaml" "$@"; }
cp "$bundle/certfleet" "$work/usr/bin/certfleet"
cf plugins install --public-key "$work/key.pub" "$work/v1/certfleet-citrix-nitro_${v1}_${target}.tar.gz"
pin1=$(grep -o '"sha256": "[0-9a-f]*"' "$work/sim/plugins.lock.json")
cf run || fail "run with bundle $v1"
cf status --output json > "$work/status1.json"
grep -q '"certificate"' "$work/status1.json" || fail "no certificate after the first run"
cf plugins list | grep -q "citrix-nitro  *$v1 *yes" || fail "plugins list does not show citrix-nitro $v1 pinned"

step "upgrade: bundle $v2 with a changed plugin"
dist "$v2" "$work/v2" -packages=false -cyclonedx-gomod= -signing-key "$work/key.sec"
tar xzf "$work/v2/certfleet-citrix-nitro_${v2}_${target}.tar.gz" -C "$work/citrix"
cp "$work/citrix/certfleet-citrix-nitro_${v2}_${target}/certfleet" "$work/usr/bin/certfleet"
# A bundle that is not the signed one is refused before anything is installed.
cp "$work/v1/certfleet-citrix-nitro_${v1}_${target}.tar.gz" "$work/v2/certfleet-citrix-nitro_${v2}_${target}.tar.gz.orig"
cp "$work/v2/certfleet-citrix-nitro_${v2}_${target}.tar.gz" "$work/v2-good.tar.gz"
cp "$work/v2/certfleet-citrix-nitro_${v2}_${target}.tar.gz.orig" "$work/v2/certfleet-citrix-nitro_${v2}_${target}.tar.gz"
if cf plugins install --public-key "$work/key.pub" "$work/v2/certfleet-citrix-nitro_${v2}_${target}.tar.gz" 2>"$work/refused.txt"; then
  fail "a bundle not matching the signed SHA256SUMS was installed"
fi
grep -q "damaged or altered" "$work/refused.txt" || fail "refusal does not say why: $(cat "$work/refused.txt")"
cp "$work/v2-good.tar.gz" "$work/v2/certfleet-citrix-nitro_${v2}_${target}.tar.gz"
cf plugins install --public-key "$work/key.pub" "$work/v2/certfleet-citrix-nitro_${v2}_${target}.tar.gz"
pin2=$(grep -o '"sha256": "[0-9a-f]*"' "$work/sim/plugins.lock.json")
[ "$pin1" != "$pin2" ] || fail "the pin did not change with the plugin"
cf run || fail "run after the upgrade"
cf status --output json > "$work/status2.json"
cf plugins list | grep -q "citrix-nitro  *$v2 *yes" || fail "plugins list does not show citrix-nitro $v2 pinned"
# Nothing enrolled again: the deployed certificates (serials, expiry) are the ones from before.
strip() { grep -E '"(certificate|serial|not_after)"' "$1"; }
strip "$work/status1.json" | grep -q '"serial"' || fail "status --output json shows no serials"
diff <(strip "$work/status1.json") <(strip "$work/status2.json") || fail "certificates changed across the upgrade"
echo
echo "dist-check: OK"
