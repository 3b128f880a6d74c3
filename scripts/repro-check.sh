#!/usr/bin/env bash
# make repro-check: the same commit, cloned into two directories of different names and depths,
# built into a release in each — the second with its own empty Go build cache, so nothing is
# reused — must give byte-identical bundles, packages, SBOMs and OCI image (SHA256SUMS equal, and
# the image index digests too). REPRO_TARGETS chooses the bundles' targets (linux/amd64),
# REPRO_IMAGE_TARGETS the image's platforms (linux/amd64,linux/arm64, as released).
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$PWD/.tools/bin
commit=$(git rev-parse HEAD)
[ -z "$(git status --porcelain --untracked-files=no)" ] || echo "repro-check: uncommitted changes are not checked; building HEAD ($commit)"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
a="$work/a" b="$work/second/path/elsewhere/certfleet-checkout"
for dir in "$a" "$b"; do
  git clone -q --no-checkout . "$dir"
  git -C "$dir" checkout -q --detach "$commit"
done
build() { # dir [env...]
  local dir=$1; shift
  (cd "$dir" && env "$@" go run ./scripts/dist -version 0.0.0-repro -out dist -targets "${REPRO_TARGETS:-linux/amd64}" \
    -image-targets "${REPRO_IMAGE_TARGETS:-linux/amd64,linux/arm64}" \
    -nfpm "$tools/nfpm" -cyclonedx-gomod "$tools/cyclonedx-gomod" 2>&1 | sed "s|^|[$(basename "$dir")] |")
}
t0=$(date +%s)
build "$a" GOFLAGS=
t1=$(date +%s)
build "$b" GOCACHE="$work/empty-gocache"
t2=$(date +%s)
echo "build in $a: $((t1 - t0)) s; in $b with an empty build cache: $((t2 - t1)) s"
image=certfleet_0.0.0-repro_oci.tar
digest_a=$(go run ./scripts/imagecheck -archive "$a/dist/$image" | sed -n 's/^digest //p')
digest_b=$(go run ./scripts/imagecheck -archive "$b/dist/$image" | sed -n 's/^digest //p')
echo "image index digest in $a: $digest_a"
echo "image index digest in $b: $digest_b"
if [ -z "$digest_a" ] || [ "$digest_a" != "$digest_b" ]; then
  echo "repro-check: FAIL: the two checkouts gave different images" >&2
  exit 1
fi
if ! diff -u "$a/dist/SHA256SUMS" "$b/dist/SHA256SUMS"; then
  echo "repro-check: FAIL: the two checkouts gave different files" >&2
  exit 1
fi
cat "$a/dist/SHA256SUMS"
echo "repro-check: OK: $(wc -l < "$a/dist/SHA256SUMS") files identical across two checkout paths (commit $commit)"
