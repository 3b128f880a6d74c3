package sopscodec

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzSopsDocuments feeds arbitrary bytes to the sops document reader (every format: the parse
// that precedes any key lookup, so no key service or gpg is involved): it may refuse them, never
// panic or hang.
func FuzzSopsDocuments(f *testing.F) {
	files, _ := filepath.Glob("../testdata/*/*")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil && len(data) < 64<<10 {
			f.Add(data)
		}
	}
	f.Add([]byte("sops:\n  mac: ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]\n  version: 3.13.3\n"))
	f.Add([]byte("{\"sops\": {\"age\": [{}]}, \"a\": \"ENC[AES256_GCM,data:,iv:,tag:,type:int]\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, format := range []string{"yaml", "json", "dotenv", "ini", "binary"} {
			if !IsSopsFile(data, format) {
				continue
			}
			store, err := storeFor(format)
			if err != nil {
				t.Fatal(err)
			}
			if tree, err := store.LoadEncryptedFile(data); err == nil {
				_ = tree.Metadata.Version
			}
		}
	})
}
