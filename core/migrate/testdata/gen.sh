#!/usr/bin/env bash
# Encrypts the agent fixtures in plain/ with the real sops CLI and the committed TEST PGP key (the
# one core/secret's fixtures use), the way the agents' manuals say: scm.yaml and the credentials
# file fully, the Citrix profile and the PAN-OS firewall profile partially (--encrypted-regex),
# the F5 file fully. The Palo Alto config.yaml names the key (sectigo_gnu_key), and its
# sectigo_credentials.yaml stays plain, as a user who never ran "-a encrypt" has it.
#   core/migrate/testdata/gen.sh   (needs sops — `make tools` — and gpg)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SOPS=${SOPS_BIN:-$here/../../../.tools/bin/sops}
work=$(mktemp -d /tmp/certfleet-migrate-gen.XXXXXX)
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
trap 'gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null || true; rm -rf "$work"' EXIT
gpg --batch --import "$here/keys/pgp-test.sec.asc" 2>/dev/null
fpr=$(cat "$here/keys/pgp-test.fpr")
rm -rf "$here/agents"
mkdir -p "$here/agents"
cp -r "$here/plain/." "$here/agents/"
sed -i "s/PGPFPR/$fpr/" "$here/agents/paloalto/config.yaml"
enc() { "$SOPS" --encrypt --in-place --pgp "$fpr" "$@"; }
enc "$here/agents/citrix/scm.yaml"
enc "$here/agents/citrix/citrix_creds.yaml"
enc --encrypted-regex '^password$' "$here/agents/citrix/example_cert_config.yaml"
enc --encrypted-regex '^paloalto_api_key$' "$here/agents/paloalto/fw_paloalto_config.yaml"
enc "$here/agents/f5/shop.yaml"
