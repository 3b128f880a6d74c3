#!/usr/bin/env bash
# Regenerates the sops fixtures under core/secret/testdata with the real sops CLI.
#
#   core/secret/testdata/gen.sh             re-encrypt every fixture with the committed test keys
#   core/secret/testdata/gen.sh --new-keys  also replace the test keys (age and PGP) first
#
# Needs: sops (same version as github.com/getsops/sops/v3 in go.mod), age-keygen, gpg.
#   go install github.com/getsops/sops/v3/cmd/sops@<version in go.mod>
#   go install filippo.io/age/cmd/age-keygen@latest
#   apt-get install -y gnupg
# The keys in keys/ are throwaway TEST keys, committed on purpose; see README.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
PATH=$PATH:$(go env GOPATH 2>/dev/null)/bin
SOPS=${SOPS_BIN:-sops}
for tool in "$SOPS" age-keygen gpg gpgconf; do
	command -v "$tool" >/dev/null || { echo "gen.sh: $tool not found on PATH" >&2; exit 1; }
done

want=$(cd "$here" && go list -m -f '{{.Version}}' github.com/getsops/sops/v3 2>/dev/null || true)
# The module version recorded in the binary (go install builds); `sops --version` would go online.
have=$(go version -m "$(command -v "$SOPS")" 2>/dev/null | awk '$1 == "mod" {print $3}' || true)
if [ -n "$want" ] && [ "$have" != "$want" ]; then
	echo "gen.sh: warning: sops CLI is $have, the library in go.mod is $want" >&2
fi

keys=$here/keys
mkdir -p "$keys"

# A private GnuPG home so nothing touches the user's keyring; the agent it starts is stopped on exit.
work=$(mktemp -d /tmp/certfleet-secret-gen.XXXXXX)
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
cleanup() { gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

if [ "${1:-}" = "--new-keys" ] || [ ! -f "$keys/age-test.txt" ]; then
	rm -f "$keys"/age-test.txt "$keys"/age-other.txt "$keys"/pgp-test.sec.asc "$keys"/pgp-test.fpr
	age-keygen -o "$keys/age-test.txt" 2>/dev/null
	age-keygen -o "$keys/age-other.txt" 2>/dev/null
	gpg --batch --quiet --passphrase '' --quick-gen-key \
		'certfleet test key (TEST ONLY, NOT SECRET) <test@certfleet.invalid>' default default never
	fpr=$(gpg --batch --with-colons --list-secret-keys | awk -F: '/^fpr:/ {print $10; exit}')
	gpg --batch --armor --export-secret-keys "$fpr" >"$keys/pgp-test.sec.asc"
	echo "$fpr" >"$keys/pgp-test.fpr"
fi
chmod 600 "$keys"/age-test.txt "$keys"/age-other.txt
gpg --batch --quiet --import "$keys/pgp-test.sec.asc"
fpr=$(cat "$keys/pgp-test.fpr")
age=$(age-keygen -y "$keys/age-test.txt")

# sops looks for .sops.yaml from the working directory upwards: work somewhere that has none.
cd "$work"
enc() { # enc <out> <plain> [sops encrypt options...]
	local out=$1 in=$2
	shift 2
	mkdir -p "$(dirname "$here/$out")"
	"$SOPS" encrypt "$@" "$here/$in" >"$here/$out.tmp"
	mv "$here/$out.tmp" "$here/$out"
	echo "wrote $out"
}

for kind in age pgp; do
	if [ $kind = age ]; then key=(--age "$age"); else key=(--pgp "$fpr"); fi
	enc $kind/creds.yaml plain/creds.yaml "${key[@]}"
	enc $kind/creds.partial.yaml plain/creds.yaml "${key[@]}" --encrypted-regex '^password$'
	enc $kind/scm.yaml plain/scm.yaml "${key[@]}"
	enc $kind/scm.partial.yaml plain/scm.yaml "${key[@]}" --encrypted-regex '^client_secret$'
	enc $kind/settings.json plain/settings.json "${key[@]}"
	enc $kind/settings.partial.json plain/settings.json "${key[@]}" --encrypted-regex '^(client_secret|api_key)$'
done
enc age/token.txt plain/token.txt --age "$age"
enc both/scm.yaml plain/scm.yaml --age "$age" --pgp "$fpr"
