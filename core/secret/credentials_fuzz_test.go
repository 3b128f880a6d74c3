package secret

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzCredentials feeds arbitrary bytes to the credentials file parser: it may refuse them, never
// panic or hang. (The sops document reader has its own, FuzzSopsDocuments in sopscodec.)
func FuzzCredentials(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil && len(data) < 64<<10 {
			f.Add(data)
		}
	}
	f.Add([]byte("credentials:\n  - {host: adc1.example.com, username: nsroot, password: x}\n"))
	f.Add([]byte(`[{"host": "a", "username": "u", "password": "p"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseCredentials(data, "fuzz.yaml", false)
	})
}
