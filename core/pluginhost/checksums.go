package pluginhost

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// ChecksumsFile is the name of the checksums file in a bundle and in a release directory.
const ChecksumsFile = "SHA256SUMS"

// Checksums maps a slash-separated path, relative to the checksums file, to its hex SHA-256. Its
// text form is what `sha256sum` writes and `sha256sum -c` checks.
type Checksums map[string]string

// ParseChecksums reads the text of a SHA256SUMS file; source names it in errors.
func ParseChecksums(data []byte, source string) (Checksums, error) {
	sums := Checksums{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		// "<64 hex> <space or *><path>": the second character is sha256sum's text/binary mode flag.
		if len(text) < 67 || text[64] != ' ' || (text[65] != ' ' && text[65] != '*') {
			return nil, fmt.Errorf("%s:%d: not a sha256sum line (want \"<64 hex digits>  <file>\")", source, line)
		}
		sum, name := strings.ToLower(text[:64]), text[66:]
		if _, err := hex.DecodeString(sum); err != nil {
			return nil, fmt.Errorf("%s:%d: %q is not a hex SHA-256", source, line, text[:64])
		}
		if err := checkRelative(name); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, line, err)
		}
		if prev, dup := sums[name]; dup && prev != sum {
			return nil, fmt.Errorf("%s:%d: %s is listed twice with different checksums", source, line, name)
		}
		sums[name] = sum
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	if len(sums) == 0 {
		return nil, fmt.Errorf("%s lists no files", source)
	}
	return sums, nil
}

// checkRelative refuses a listed path that could point outside the directory of the checksums file.
func checkRelative(name string) error {
	if name == "" || strings.Contains(name, `\`) || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("%q is not a plain relative path inside the bundle", name)
	}
	return nil
}

// ReadChecksums reads the SHA256SUMS file at path.
func ReadChecksums(path string) (Checksums, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read checksums: %w", err)
	}
	return ParseChecksums(data, path)
}

// Format returns the sha256sum text of the checksums, sorted by path so that it is reproducible.
func (c Checksums) Format() []byte {
	names := make([]string, 0, len(c))
	for name := range c {
		names = append(names, name)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, name := range names {
		fmt.Fprintf(&b, "%s  %s\n", c[name], name)
	}
	return b.Bytes()
}

// Verify checks every listed file under dir against its checksum; all mismatches are reported.
func (c Checksums) Verify(dir string) error {
	names := make([]string, 0, len(c))
	for name := range c {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		file := filepath.Join(dir, filepath.FromSlash(name))
		got, err := fileSHA256(file)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		case got != c[name]:
			errs = append(errs, fmt.Errorf("%s: sha256 %s, but %s says %s", name, got, ChecksumsFile, c[name]))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s does not match the files in %s (a damaged or altered bundle; download it again): %w",
			ChecksumsFile, dir, errors.Join(errs...))
	}
	return nil
}

// sumBytes returns the hex SHA-256 of data.
func sumBytes(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}
