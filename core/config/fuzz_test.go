package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the configuration loader as the content of a file: it may
// refuse them, never panic, and every problem it reports names the file.
func FuzzLoad(f *testing.F) {
	for _, path := range []string{"testdata/good.yaml", "../../examples/certfleet.yaml"} {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	for _, seed := range []string{
		"", "version: v1\n", "version: v1\n---\nversion: v1\n", "version: v2\n", "- a\n- b\n", "version: v1\ndevices: 7\n",
		"version: v1\ncertificates:\n  a: {device: d, sans: {dns: ['*.*.x', 1.2.3.4, 'a.']}, renew_before: 99999d, key: {type: rsa, bits: -1}}\n",
		"version: v1\ndefaults: &a {issuer: *a}\n", "a: &a [*a, *a, *a, *a]\n", "version: v1\nstate: {path: ${file:/dev/zero}}\n",
		"version: v1\nissuers:\n  ca: {type: scm, scm: {base_url: 'http://x', client_secret: '${env:}'}}\n",
	} {
		f.Add([]byte(seed))
	}
	// The file only has to exist; its content is the fuzzer's input, given through the reader.
	path := filepath.Join(f.TempDir(), "certfleet.yaml")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, err := Load(path, WithFileReader(func(string) ([]byte, error) { return data, nil }))
		if errs, ok := err.(*Errors); ok {
			for _, p := range errs.Problems {
				if p.Position.File != path {
					t.Fatalf("a problem without its file: %+v", p)
				}
			}
		}
	})
}
