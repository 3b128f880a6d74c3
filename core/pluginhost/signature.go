package pluginhost

import (
	"fmt"
	"os"
	"path/filepath"

	"aead.dev/minisign"
)

// SignatureFile is the minisign signature of a release's SHA256SUMS, beside it.
const SignatureFile = ChecksumsFile + ".minisig"

// VerifyRelease checks a bundle archive the way a release is published: the SHA256SUMS beside
// the archive carries a minisign signature by publicKeyFile's key, and lists the archive with its
// checksum. minisign (aead.dev/minisign, the format of jedisct1/minisign) is what `make dist` signs with.
func VerifyRelease(archive, publicKeyFile string) error {
	pub, err := minisign.PublicKeyFromFile(publicKeyFile)
	if err != nil {
		return fmt.Errorf("plugin public key %s: %w", publicKeyFile, err)
	}
	dir := filepath.Dir(archive)
	sumsPath, sigPath := filepath.Join(dir, ChecksumsFile), filepath.Join(dir, SignatureFile)
	sumsData, err := os.ReadFile(sumsPath)
	if err != nil {
		return fmt.Errorf("a public key is configured, so the release's %s must lie beside the bundle: %w", ChecksumsFile, err)
	}
	sig, err := os.ReadFile(sigPath)
	if err != nil {
		return fmt.Errorf("a public key is configured, so the release's signature must lie beside the bundle: %w", err)
	}
	if !minisign.Verify(pub, sumsData, sig) {
		return fmt.Errorf("%s is not signed by the key in %s (key id %X): refusing the bundle; download the release again or check the key",
			sumsPath, publicKeyFile, pub.ID())
	}
	sums, err := ParseChecksums(sumsData, sumsPath)
	if err != nil {
		return err
	}
	name := filepath.Base(archive)
	want, ok := sums[name]
	if !ok {
		return fmt.Errorf("the signed %s does not list %s: it is not part of that release", sumsPath, name)
	}
	got, err := fileSHA256(archive)
	if err != nil {
		return fmt.Errorf("checksum %s: %w", archive, err)
	}
	if got != want {
		return fmt.Errorf("%s has sha256 %s, but the signed %s says %s: a damaged or altered bundle; download it again", archive, got, sumsPath, want)
	}
	return nil
}
