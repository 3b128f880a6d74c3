#!/usr/bin/env bash
# make dist-check: what CI checks of a release, for linux/amd64 —
#   every binary static; SHA256SUMS and its minisign signature verify;
#   `plugins install` checks the signature (and refuses a bundle that is not the signed one);
#   the Citrix bundle unpacked alone into an empty directory: its files, its SHA256SUMS, `validate`
#   on its sample, then a full enroll against certfleet-sim with the bundle's binaries only;
#   an upgrade: bundle v1 installed and run, bundle v2 (a changed plugin) installed, run again:
#   no refusal, the pin follows, nothing enrolled again;
#   the OCI image: read with go-containerregistry (every blob against its digest), an index of
#   linux/amd64 and linux/arm64 run as a numeric non-root user; the amd64 filesystem unpacked into
#   an empty directory and its certfleet run from there (as root: chrooted, as the image's user,
#   with the image's environment, as a container runtime would), no container runtime needed.
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
# The sops checks encrypt for the test age key of core/secret's fixtures.
age_key=$PWD/core/secret/testdata/keys/age-test.txt
age_recipient=$(sed -n 's/^# public key: //p' "$age_key")
dist() { # version out [extra flags]
  go run ./scripts/dist -version "$1" -out "$2" -targets linux/amd64 -nfpm "$tools/nfpm" \
    -cyclonedx-gomod "$tools/cyclonedx-gomod" -minisign "$tools/minisign" "${@:3}"
}

step "build release $v1 (signed with a key made for this check)"
"$tools/minisign" -G -W -p "$work/key.pub" -s "$work/key.sec" >/dev/null
t0=$(date +%s)
# The image is an index of linux/amd64 and linux/arm64: arm64 is built for the image alone.
dist "$v1" "$work/v1" -image-targets linux/amd64,linux/arm64 -signing-key "$work/key.sec"
echo "release $v1 built in $(($(date +%s) - t0)) s"

step "SHA256SUMS and its signature"
(cd "$work/v1" && "$tools/minisign" -V -p "$work/key.pub" -m SHA256SUMS && sha256sum -c --quiet SHA256SUMS) || fail "checksums or signature"
for want in "certfleet_${v1}_${target}.tar.gz" "certfleet-citrix-nitro_${v1}_${target}.tar.gz" \
  "certfleet-paloalto-panos_${v1}_${target}.tar.gz" "certfleet-f5-bigip_${v1}_${target}.tar.gz" \
  "certfleet_${v1}_amd64.deb" "certfleet-${v1}-1.x86_64.rpm" "sbom/certfleet_${v1}_${target}.cdx.json" \
  "certfleet_${v1}_oci.tar"; do
  grep -q "  $want\$" "$work/v1/SHA256SUMS" || fail "SHA256SUMS does not list $want"
done

step "every binary is static"
for bin in "$work/v1/.build/$target"/certfleet*; do
  [ -x "$bin" ] || continue
  file "$bin" | grep -q "statically linked" || fail "$(file "$bin")"
  if ldd "$bin" >/dev/null 2>&1; then fail "ldd finds shared libraries in $bin"; fi
  echo "static: $(basename "$bin")"
done
for bin in "$work/v1/.build/linux_arm64"/certfleet*; do
  [ -x "$bin" ] || continue
  file "$bin" | grep -q "ARM aarch64.*statically linked" || fail "$(file "$bin")"
done

step "the OCI image"
t0=$(date +%s)
rootfs=$work/rootfs
go run ./scripts/imagecheck -archive "$work/v1/certfleet_${v1}_oci.tar" -version "$v1" \
  -platforms linux/amd64,linux/arm64 -unpack "linux/amd64=$rootfs" > "$work/image.txt" || fail "image check"
cat "$work/image.txt"
user=$(sed -n 's/^user //p' "$work/image.txt")
image_env=()
while IFS= read -r e; do image_env+=("$e"); done < <(sed -n 's/^env //p' "$work/image.txt")
# The image has no /etc/ssl and no zoneinfo: every binary brings its CA roots, certfleet its zoneinfo.
[ ! -e "$rootfs/etc/ssl" ] && [ ! -e "$rootfs/usr/share/zoneinfo" ] || fail "the image has CA or zoneinfo files of a build machine"
for bin in "$rootfs/usr/bin/certfleet" "$rootfs/usr/lib/certfleet/certfleet-sops" "$rootfs/usr/lib/certfleet/plugins"/certfleet-plugin-*; do
  go version -m "$bin" | grep -q "golang.org/x/crypto/x509roots/fallback" || fail "$bin has no CA roots compiled in"
done
[ "$(stat -c %u:%g "$rootfs/var/lib/certfleet")" = "$user" ] || [ "$(id -u)" != 0 ] || fail "/var/lib/certfleet is not owned by $user"
if [ "$(id -u)" = 0 ]; then
  # What a runtime gives a container and the image does not carry: /dev/null.
  mkdir -p "$rootfs/dev" && mknod -m 666 "$rootfs/dev/null" c 1 3
  inside=
  chroot=$(command -v chroot)
  in_image() { env -i "${image_env[@]}" "$chroot" --userspec="$user" "$rootfs" /usr/bin/certfleet "$@"; }
else
  echo "not root: running the unpacked files in place, not chrooted as the image's user"
  inside=$rootfs
  in_image() { env -i "${image_env[@]}" CERTFLEET_PINS_FILE="$rootfs/usr/lib/certfleet/plugins.lock.json" \
    "$rootfs/usr/bin/certfleet" --plugin-dir "$rootfs/usr/lib/certfleet/plugins" "$@"; }
fi
in_image --version | grep -q "certfleet version $v1\$" || fail "the image's certfleet does not report $v1"
# The full sample (daemon.time_zone Europe/London needs zoneinfo); it names the example pemdir
# plugin, which is not shipped, so its plugins are not started here ...
in_image --config "$inside/etc/certfleet/certfleet.yaml.sample" validate --offline
# ... but every vendor sample the image ships beside it is checked against its plugin, started
# from the image's plugin directory and pinned by the image's own pins file.
for sample in plugins/*/dist/certfleet.yaml; do
  name=$(basename "$(dirname "$(dirname "$sample")")")
  shipped="$rootfs/usr/share/doc/certfleet/samples/$name.yaml"
  cmp -s "$sample" "$shipped" || fail "the image does not ship the $name sample as $shipped"
  install -m 0644 "$shipped" "$rootfs/tmp/$name.yaml"
  in_image --config "$inside/tmp/$name.yaml" validate
done
in_image --config "$inside/tmp/citrix-nitro.yaml" plugins list > "$work/image-plugins.txt"
cat "$work/image-plugins.txt"
for p in plugins/*/cmd/certfleet-plugin-*; do
  name=${p##*/certfleet-plugin-}
  grep -q "^$name  *$v1  *yes" "$work/image-plugins.txt" || fail "the image's plugin $name is not listed as $v1 and pinned"
done
if [ "$(id -u)" = 0 ]; then
  # The user writes its state: status creates the database in /var/lib/certfleet, the volume.
  in_image --config "$inside/tmp/citrix-nitro.yaml" status >/dev/null
  [ "$(stat -c %u:%g "$rootfs/var/lib/certfleet/state.db")" = "$user" ] || fail "the image's user did not create its state in /var/lib/certfleet"
  # sops files are read by the helper the image installs in /usr/lib/certfleet.
  install -m 0644 "$age_key" "$rootfs/tmp/age.txt"
  printf 'password: image-secret\n' > "$rootfs/tmp/s.yaml" && chown "$user" "$rootfs/tmp/s.yaml"
  in_image secrets encrypt --in-place --age "$age_recipient" /tmp/s.yaml
  ! grep -q image-secret "$rootfs/tmp/s.yaml" || fail "the image's certfleet did not encrypt"
  env -i "${image_env[@]}" SOPS_AGE_KEY_FILE=/tmp/age.txt "$chroot" --userspec="$user" "$rootfs" /usr/bin/certfleet secrets decrypt /tmp/s.yaml \
    | grep -q image-secret || fail "the image's certfleet did not decrypt through its sops helper"
fi
echo "image checked in $(($(date +%s) - t0)) s"

step "the Citrix bundle, unpacked alone into an empty directory"
mkdir "$work/citrix"
tar xzf "$work/v1/certfleet-citrix-nitro_${v1}_${target}.tar.gz" -C "$work/citrix"
bundle="$work/citrix/certfleet-citrix-nitro_${v1}_${target}"
want="LICENSE? README.md SHA256SUMS certfleet certfleet-plugin-citrix-nitro certfleet-sops certfleet.yaml completions/_certfleet completions/certfleet.bash completions/certfleet.fish man/certfleet.1 systemd/certfleet.service systemd/certfleet.timer systemd/certfleet-daemon.service"
got=$(cd "$bundle" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')
for f in $want; do
  case "$f" in *\?) continue;; esac
  case " $got " in *" $f "*) ;; *) fail "bundle lacks $f (has: $got)";; esac
done
(cd "$bundle" && sha256sum -c --quiet SHA256SUMS) || fail "bundle SHA256SUMS"
"$bundle/certfleet" version | grep -q "certfleet $v1 " || fail "certfleet does not report $v1"
# sops files are read by the helper beside certfleet in the bundle (no other copy is reachable).
printf 'password: bundle-secret\n' > "$work/s.yaml"
env -u CERTFLEET_SOPS_HELPER "$bundle/certfleet" secrets encrypt --in-place --age "$age_recipient" "$work/s.yaml"
! grep -q bundle-secret "$work/s.yaml" || fail "the bundle's certfleet did not encrypt"
env -u CERTFLEET_SOPS_HELPER SOPS_AGE_KEY_FILE="$age_key" "$bundle/certfleet" secrets decrypt "$work/s.yaml" | grep -q bundle-secret \
  || fail "the bundle's certfleet did not decrypt through the sops helper beside it"
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
dist "$v2" "$work/v2" -packages=false -image=false -cyclonedx-gomod= -signing-key "$work/key.sec"
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
