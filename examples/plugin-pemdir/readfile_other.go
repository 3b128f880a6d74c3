//go:build !unix

package pemdir

import "os"

// readFile reads a small file.
func readFile(path string) ([]byte, error) { return os.ReadFile(path) }
