// Package logging builds the one logger of a certfleet process. Everything logs through it: the
// core, the CA issuers (through an slog handler), sops, and the plugins (relayed by go-plugin).
// It writes to the terminal at one level and, when configured, to a size-rotated file at another
// (debug to the file and warn to the terminal, as the Sectigo agents do), and every line passes
// through the secret redactor before it is written anywhere.
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/secret"
	"github.com/hashicorp/go-hclog"
	"gopkg.in/natefinch/lumberjack.v2"
)

// FileOptions configure the log file.
type FileOptions struct {
	Path string
	// Level is the file's own level (debug when empty).
	Level string
	// Format is text or json (the terminal's format when empty).
	Format string
	// MaxSizeMB rotates the file when it would grow past this size (10 when zero).
	MaxSizeMB int
	// MaxBackups is how many rotated files are kept (10 when zero).
	MaxBackups int
	// MaxAgeDays removes rotated files older than this (kept forever when zero).
	MaxAgeDays int
	// Compress gzips rotated files.
	Compress bool
	// Daily also starts a new file on the first write of each day (the Sectigo Citrix agent's
	// practice), whatever its size.
	Daily bool
}

// Options configure the terminal side of the logger.
type Options struct {
	Output   io.Writer
	Level    hclog.Level
	JSON     bool
	Redactor *secret.Redactor
}

// Logging is the process's logger with its outputs.
type Logging struct {
	// root writes nothing itself: the terminal and the file are sinks with their own levels and
	// formats. Its level is the lowest any sink wants, so every logger derived from it (and
	// go-plugin, which tells plugins to log at its level) produces what the most detailed output
	// needs.
	root     hclog.InterceptLogger
	redactor *secret.Redactor
	termOut  *secret.Writer

	mu       sync.Mutex
	termSink hclog.SinkAdapter
	termLvl  hclog.Level
	json     bool
	early    *earlySink
	file     *lumberjack.Logger
	fileOut  *secret.Writer
	fileSink hclog.SinkAdapter
	fileLvl  hclog.Level
	filePath string
}

// earlyLimit bounds the records kept from before the log file is opened (configuration loading).
const earlyLimit = 2000

// New returns a logger writing to opts.Output only. Until OpenFile is called (or Discard), it keeps
// the records below the terminal's level too, so the file receives the debug detail of the
// configuration loading that happened before its path was known.
func New(opts Options) *Logging {
	if opts.Redactor == nil {
		opts.Redactor = secret.NewRedactor()
	}
	if opts.Output == nil {
		opts.Output = os.Stderr
	}
	if opts.Level == hclog.NoLevel {
		opts.Level = hclog.Info
	}
	l := &Logging{redactor: opts.Redactor}
	l.termOut = opts.Redactor.Writer(opts.Output)
	l.root = hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "certfleet", Level: hclog.Trace, Output: io.Discard})
	l.early = &earlySink{}
	l.root.RegisterSink(l.early)
	l.SetTerminal(opts.Level, opts.JSON)
	return l
}

// Redactor is the redactor every output passes through.
func (l *Logging) Redactor() *secret.Redactor { return l.redactor }

// Logger returns the process logger.
func (l *Logging) Logger() hclog.Logger { return l.root }

// Slog returns an slog.Logger that writes through the same logger (for the issuers).
func (l *Logging) Slog() *slog.Logger { return slog.New(&slogHandler{log: l.root}) }

// SetTerminal changes the terminal's level and format.
func (l *Logging) SetTerminal(level hclog.Level, json bool) {
	sink := hclog.NewSinkAdapter(&hclog.LoggerOptions{Level: level, JSONFormat: json, Output: l.termOut, Color: hclog.ColorOff})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.root.RegisterSink(sink)
	if l.termSink != nil {
		l.root.DeregisterSink(l.termSink)
	}
	l.termSink, l.termLvl, l.json = sink, level, json
	l.adjustLocked()
}

// adjustLocked sets the root's level to the lowest level an output wants.
func (l *Logging) adjustLocked() {
	level := l.termLvl
	if l.fileSink != nil && l.fileLvl < level {
		level = l.fileLvl
	}
	if l.early != nil {
		level = hclog.Trace
	}
	l.root.SetLevel(level)
}

// FilePath is the log file's path, or "" when there is none.
func (l *Logging) FilePath() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.filePath
}

// OpenFile starts writing to a rotated file at its own level, beginning with the records kept
// since New. Calling it again replaces the file (a daemon reloading its configuration).
func (l *Logging) OpenFile(fo FileOptions) error {
	level := hclog.Debug
	if fo.Level != "" {
		if level = hclog.LevelFromString(fo.Level); level == hclog.NoLevel {
			return fmt.Errorf("log file level %q: use trace, debug, info, warn or error", fo.Level)
		}
	}
	l.mu.Lock()
	jsonFormat := l.json
	l.mu.Unlock()
	switch fo.Format {
	case "":
	case "json":
		jsonFormat = true
	case "text":
		jsonFormat = false
	default:
		return fmt.Errorf("log file format %q: use text or json", fo.Format)
	}
	if err := os.MkdirAll(filepath.Dir(fo.Path), 0o750); err != nil {
		return fmt.Errorf("log file %s: %w", fo.Path, err)
	}
	// Open it now, so a path that cannot be written is reported at start rather than lost.
	f, err := os.OpenFile(fo.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("log file %s: %w", fo.Path, err)
	}
	f.Close()
	file := &lumberjack.Logger{
		Filename: fo.Path, MaxSize: orDefault(fo.MaxSizeMB, 10), MaxBackups: orDefault(fo.MaxBackups, 10),
		MaxAge: fo.MaxAgeDays, Compress: fo.Compress, LocalTime: true,
	}
	var dest io.Writer = file
	if fo.Daily {
		dest = newDailyWriter(file, fo.Path)
	}
	out := l.redactor.Writer(dest)
	var replayAt time.Time
	sink := hclog.NewSinkAdapter(&hclog.LoggerOptions{
		Level: level, JSONFormat: jsonFormat, Output: out, Color: hclog.ColorOff,
		TimeFn: func() time.Time {
			if !replayAt.IsZero() {
				return replayAt
			}
			return time.Now()
		},
	})

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.early != nil {
		l.root.DeregisterSink(l.early)
		for _, r := range l.early.take() {
			replayAt = r.at
			sink.Accept(r.name, r.level, r.msg, r.args...)
		}
		replayAt = time.Time{}
		l.early = nil
	}
	old, oldOut, oldFile := l.fileSink, l.fileOut, l.file
	l.root.RegisterSink(sink)
	l.fileSink, l.fileOut, l.file, l.fileLvl, l.filePath = sink, out, file, level, fo.Path
	if old != nil {
		l.root.DeregisterSink(old)
		_ = oldOut.Flush()
		_ = oldFile.Close()
	}
	l.adjustLocked()
	return nil
}

// CloseFile stops writing to the log file, if any.
func (l *Logging) CloseFile() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropEarly()
	if l.fileSink == nil {
		return nil
	}
	l.root.DeregisterSink(l.fileSink)
	err := errors.Join(l.fileOut.Flush(), l.file.Close())
	l.fileSink, l.fileOut, l.file, l.filePath = nil, nil, nil, ""
	l.adjustLocked()
	return err
}

// Discard forgets the records kept for a log file that will not be opened.
func (l *Logging) Discard() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropEarly()
}

func (l *Logging) dropEarly() {
	if l.early != nil {
		l.root.DeregisterSink(l.early)
		l.early = nil
		l.adjustLocked()
	}
}

// Rotate starts a new log file now (on SIGHUP, or from logrotate's postrotate).
func (l *Logging) Rotate() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	return l.file.Rotate()
}

// Close flushes and closes every output.
func (l *Logging) Close() error {
	err := l.CloseFile()
	return errors.Join(err, l.termOut.Flush())
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// earlySink keeps records until the log file is opened.
type earlySink struct {
	mu      sync.Mutex
	records []record
}

type record struct {
	at    time.Time
	name  string
	level hclog.Level
	msg   string
	args  []any
}

func (s *earlySink) Accept(name string, level hclog.Level, msg string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.records) >= earlyLimit {
		return
	}
	s.records = append(s.records, record{at: time.Now(), name: name, level: level, msg: msg, args: append([]any(nil), args...)})
}

func (s *earlySink) take() []record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.records
	s.records = nil
	return out
}

// dailyWriter rotates the file on the first write of a new day. The day of the last write is
// taken from the file's modification time at start, so that one-shot runs from cron rotate too.
type dailyWriter struct {
	file    *lumberjack.Logger
	mu      sync.Mutex
	lastDay string
}

func newDailyWriter(file *lumberjack.Logger, path string) *dailyWriter {
	w := &dailyWriter{file: file}
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		w.lastDay = st.ModTime().Format(time.DateOnly)
	}
	return w
}

func (w *dailyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	today := time.Now().Format(time.DateOnly)
	if w.lastDay != "" && w.lastDay != today {
		if err := w.file.Rotate(); err != nil {
			return 0, err
		}
	}
	w.lastDay = today
	return w.file.Write(p)
}
