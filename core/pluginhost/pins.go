package pluginhost

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/atomicfile"
)

// Pin records the checksum a plugin binary had when it was trusted.
type Pin struct {
	SHA256   string    `json:"sha256"`
	Path     string    `json:"path"`
	PinnedAt time.Time `json:"pinned_at"`
}

type pinFile struct {
	Version int            `json:"version"`
	Plugins map[string]Pin `json:"plugins"`
}

// pinStore keeps the pins file: trust on first use, refuse a changed binary until re-pinned.
type pinStore struct {
	path string
	mu   sync.Mutex
}

func (s *pinStore) load() (pinFile, error) {
	pf := pinFile{Version: 1, Plugins: map[string]Pin{}}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return pf, nil
	}
	if err != nil {
		return pf, fmt.Errorf("read plugin pins %s: %w", s.path, err)
	}
	if err := json.Unmarshal(data, &pf); err != nil {
		return pf, fmt.Errorf("plugin pins %s is not valid JSON (%v); fix or delete it, then run `certfleet plugins pin`", s.path, err)
	}
	if pf.Plugins == nil {
		pf.Plugins = map[string]Pin{}
	}
	return pf, nil
}

func (s *pinStore) save(pf pinFile) error {
	data, err := FormatPins(pf.Plugins)
	if err != nil {
		return err
	}
	return atomicfile.Write(s.path, data, 0o600)
}

// FormatPins is the content of a pins file holding these pins (plugin name → pin); a release
// that ships its plugins already pinned (the OCI image) writes one.
func FormatPins(pins map[string]Pin) ([]byte, error) {
	data, err := json.MarshalIndent(pinFile{Version: 1, Plugins: pins}, "", "  ")
	return append(data, '\n'), err
}

// get returns the pin for name, if any.
func (s *pinStore) get(name string) (Pin, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pf, err := s.load()
	if err != nil {
		return Pin{}, false, err
	}
	p, ok := pf.Plugins[name]
	return p, ok, nil
}

// set pins name to sum at path.
func (s *pinStore) set(name, path, sum string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	pf, err := s.load()
	if err != nil {
		return err
	}
	pf.Plugins[name] = Pin{SHA256: sum, Path: path, PinnedAt: time.Now().UTC().Truncate(time.Second)}
	return s.save(pf)
}

// fileSHA256 returns the hex SHA-256 of a file.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
