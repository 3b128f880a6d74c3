package logging

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/secret"
	"github.com/hashicorp/go-hclog"
)

func TestTerminalAndFileHaveTheirOwnLevels(t *testing.T) {
	var term bytes.Buffer
	r := secret.NewRedactor()
	l := New(Options{Output: &term, Level: hclog.Warn, Redactor: r})
	log := l.Logger()
	log.Debug("loading the configuration", "file", "a.yaml") // before the file is known
	path := filepath.Join(t.TempDir(), "logs", "certfleet.log")
	if err := l.OpenFile(FileOptions{Path: path, Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	if got := log.GetLevel(); got != hclog.Debug {
		t.Fatalf("GetLevel = %s; plugins must be asked for what the file wants (debug)", got)
	}
	r.Add("s3cr3t-value")
	log.Named("plugin").Named("pemdir").Debug("logged in", "password", "s3cr3t-value")
	log.Warn("device unreachable", "device", "adc1")
	l.Slog().With("issuer", "sectigo").Debug("token refreshed", "expires_in", 3600)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	file := string(data)
	for _, want := range []string{"loading the configuration", "certfleet.plugin.pemdir: logged in", "device unreachable", "token refreshed: issuer=sectigo expires_in=3600"} {
		if !strings.Contains(file, want) {
			t.Errorf("log file lacks %q:\n%s", want, file)
		}
	}
	if strings.Contains(term.String(), "logged in") || strings.Contains(term.String(), "loading the configuration") || !strings.Contains(term.String(), "device unreachable") {
		t.Errorf("terminal at warn:\n%s", term.String())
	}
	if strings.Contains(file+term.String(), "s3cr3t-value") {
		t.Error("a secret reached a log output")
	}
}

func TestFileRotatesAndKeepsBackups(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "certfleet.log")
	l := New(Options{Output: &bytes.Buffer{}, Level: hclog.Error})
	if err := l.OpenFile(FileOptions{Path: path, Level: "debug", MaxSizeMB: 1, MaxBackups: 2}); err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 1000)
	for i := 0; i < 3500; i++ { // about 3.5 MB: three rotations, two backups kept
		l.Logger().Debug("filler", "n", i, "pad", line)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	backups, _ := filepath.Glob(filepath.Join(dir, "certfleet-*.log"))
	if len(backups) != 2 {
		t.Fatalf("backups %v; want 2 (max_backups)", backups)
	}
	for _, f := range append(backups, path) {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 1<<20 {
			t.Errorf("%s is %d bytes, over max_size_mb", f, st.Size())
		}
	}
}

func TestJSONFileFormatAndBadOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	l := New(Options{Output: &bytes.Buffer{}, Level: hclog.Info})
	if err := l.OpenFile(FileOptions{Path: path, Level: "loud"}); err == nil || !strings.Contains(err.Error(), "use trace, debug") {
		t.Fatalf("bad level: %v", err)
	}
	if err := l.OpenFile(FileOptions{Path: path, Format: "json", Level: "info"}); err != nil {
		t.Fatal(err)
	}
	l.Logger().Info("run finished", "deployed", 2)
	l.Logger().Debug("not in an info file")
	l.Close()
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 1 {
		t.Fatalf("lines: %q", lines)
	}
	var entry map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &entry); err != nil || entry["@message"] != "run finished" || entry["deployed"] != float64(2) {
		t.Fatalf("JSON entry %v (%v)", entry, err)
	}
	if err := New(Options{Output: &bytes.Buffer{}}).OpenFile(FileOptions{Path: "/proc/nope/c.log"}); err == nil {
		t.Fatal("an unwritable log path was accepted")
	}
}

func TestDailyRotationStartsANewFileOnANewDay(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "certfleet.log")
	if err := os.WriteFile(path, []byte("yesterday's run\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	yesterday := time.Now().Add(-24 * time.Hour)
	if err := os.Chtimes(path, yesterday, yesterday); err != nil {
		t.Fatal(err)
	}
	l := New(Options{Output: &bytes.Buffer{}, Level: hclog.Error})
	if err := l.OpenFile(FileOptions{Path: path, Daily: true}); err != nil {
		t.Fatal(err)
	}
	l.Logger().Info("today's run")
	l.Logger().Info("today's run, later")
	l.Close()
	backups, _ := filepath.Glob(filepath.Join(dir, "certfleet-*.log"))
	if len(backups) != 1 {
		t.Fatalf("backups %v; want yesterday's file kept aside", backups)
	}
	old, _ := os.ReadFile(backups[0])
	cur, _ := os.ReadFile(path)
	if string(old) != "yesterday's run\n" || !strings.Contains(string(cur), "today's run, later") || strings.Contains(string(cur), "yesterday") {
		t.Fatalf("backup %q, current %q", old, cur)
	}
}
