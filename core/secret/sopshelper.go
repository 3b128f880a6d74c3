package secret

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/bindir"
	"github.com/hashicorp/go-hclog"
)

// sops documents are decrypted and encrypted by certfleet-sops, a helper binary installed beside
// certfleet, rather than in the certfleet process. The sops library links every cloud KMS SDK it
// supports (AWS, GCP, Azure, Vault, HuaweiCloud); their package initialisation alone costs every
// certfleet command about 40 ms and 20 MiB, whether or not a sops file is ever read. The helper is
// started only for data that may be a sops document (MayBeSops), once per file a command reads.
//
// The exchange is one JSON request on the helper's standard input and one JSON response on its
// standard output; the helper's log lines (sops's own warnings) come on standard error, one JSON
// object each, and go to the logger set by RouteSopsLogs.

// SopsHelperName is the helper's file name (with ".exe" on Windows).
const SopsHelperName = "certfleet-sops"

// SopsHelperEnv names the environment variable that, when set, is the helper's path.
const SopsHelperEnv = "CERTFLEET_SOPS_HELPER"

// sopsHelperSystemPath is where the Linux packages install the helper.
const sopsHelperSystemPath = "/usr/lib/certfleet/" + SopsHelperName

// SopsHelperProtocol is the version of the request/response exchange; the helper refuses others.
const SopsHelperProtocol = 1

// The helper's operations.
const (
	SopsOpDecrypt = "decrypt"
	SopsOpEncrypt = "encrypt"
)

// SopsHelperRequest is what certfleet asks of the helper. Data is the document (for decrypt the
// file's bytes, for encrypt the plaintext); Name is the file name used in error messages.
type SopsHelperRequest struct {
	Protocol      int             `json:"protocol"`
	Op            string          `json:"op"`
	Name          string          `json:"name,omitempty"`
	Format        string          `json:"format"`
	Data          []byte          `json:"data"`
	AgeIdentities string          `json:"age_identities,omitempty"`
	GnuPGHome     string          `json:"gnupg_home,omitempty"`
	Encrypt       *EncryptOptions `json:"encrypt,omitempty"`
}

// SopsHelperResponse is the helper's answer: for decrypt, whether the document was a sops
// document and its plaintext; for encrypt, the sops document. Error is set when the operation
// failed.
type SopsHelperResponse struct {
	Encrypted bool             `json:"encrypted,omitempty"`
	Data      []byte           `json:"data,omitempty"`
	Error     *SopsHelperError `json:"error,omitempty"`
}

// SopsHelperError carries an error of this package across the process boundary so that
// errors.Is and errors.As work on it as on the original: its kind names the sentinel it wraps,
// and a KeyError travels whole.
type SopsHelperError struct {
	Kind    string    `json:"kind,omitempty"` // "", "not-encrypted", "already-encrypted", "malformed", "tampered", "key"
	Message string    `json:"message"`
	Key     *KeyError `json:"key,omitempty"`
}

var sentinelKinds = map[string]error{
	"not-encrypted":     ErrNotEncrypted,
	"already-encrypted": ErrAlreadyEncrypted,
	"malformed":         ErrMalformed,
	"tampered":          ErrTampered,
}

// NewSopsHelperError describes err, an error from decrypting or encrypting, for the response.
// The file name is left out: certfleet adds it.
func NewSopsHelperError(err error) *SopsHelperError {
	var fe *FileError
	if errors.As(err, &fe) {
		err = fe.Err
	}
	var ke *KeyError
	if errors.As(err, &ke) {
		return &SopsHelperError{Kind: "key", Message: ke.Error(), Key: ke}
	}
	for kind, sentinel := range sentinelKinds {
		if errors.Is(err, sentinel) {
			return &SopsHelperError{Kind: kind, Message: err.Error()}
		}
	}
	return &SopsHelperError{Message: err.Error()}
}

// Err is the error the helper reported, with the sentinel or KeyError it had.
func (e *SopsHelperError) Err() error {
	if e.Kind == "key" && e.Key != nil {
		return e.Key
	}
	if sentinel, ok := sentinelKinds[e.Kind]; ok {
		return &sentinelError{msg: e.Message, sentinel: sentinel}
	}
	return errors.New(e.Message)
}

// sentinelError is an error whose message was written around a sentinel in the helper.
type sentinelError struct {
	msg      string
	sentinel error
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.sentinel }

// SopsHelperPath finds the helper: $CERTFLEET_SOPS_HELPER, else beside the certfleet binary (how
// the bundles install it), else where the Linux packages install it.
func SopsHelperPath() (string, error) {
	if p := os.Getenv(SopsHelperEnv); p != "" {
		return p, nil
	}
	name := SopsHelperName
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	var tried []string
	if dir, ok := bindir.Dir(); ok {
		tried = append(tried, filepath.Join(dir, name))
	}
	if runtime.GOOS != "windows" {
		tried = append(tried, sopsHelperSystemPath)
	}
	for _, p := range tried {
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("sops files are read by the %s helper, which is not installed (looked for %s): install it from the same bundle or package as certfleet, or set %s to its path", name, strings.Join(tried, ", "), SopsHelperEnv)
}

// sopsHelperWaitDelay bounds how long the helper's output is awaited after it exits or is killed
// (a gpg it started may hold its pipes open).
const sopsHelperWaitDelay = 5 * time.Second

// runSopsHelper runs the helper for one request. The request holds plaintext or age identities
// and travels only through the helper's standard input.
func runSopsHelper(ctx context.Context, req *SopsHelperRequest) (*SopsHelperResponse, error) {
	path, err := SopsHelperPath()
	if err != nil {
		return nil, err
	}
	req.Protocol = SopsHelperProtocol
	in, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("sops helper request: %w", err)
	}
	var out bytes.Buffer
	logs := &sopsLogRelay{}
	cmd := exec.CommandContext(ctx, path)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stdout = &out
	cmd.Stderr = logs
	cmd.WaitDelay = sopsHelperWaitDelay
	runErr := cmd.Run()
	logs.flush()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, ctxErr
	}
	var resp SopsHelperResponse
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		if runErr != nil {
			return nil, fmt.Errorf("sops helper %s: %w%s", path, runErr, logs.lastLine())
		}
		return nil, fmt.Errorf("sops helper %s: unreadable response: %w", path, err)
	}
	if resp.Error != nil {
		return nil, resp.Error.Err()
	}
	if runErr != nil {
		return nil, fmt.Errorf("sops helper %s: %w%s", path, runErr, logs.lastLine())
	}
	return &resp, nil
}

// SopsLogLine is one log line of the helper on its standard error.
type SopsLogLine struct {
	Level   string         `json:"level"` // hclog level names: trace, debug, info, warn, error
	Message string         `json:"message"`
	Fields  map[string]any `json:"fields,omitempty"`
}

var (
	sopsLogMu sync.Mutex
	sopsLog   hclog.Logger = hclog.New(&hclog.LoggerOptions{Name: "sops", Output: os.Stderr, Level: hclog.Warn})
)

// RouteSopsLogs sends the log messages of sops (relayed from the helper) to log, under "sops",
// so they take the process's levels, format, outputs and redaction.
func RouteSopsLogs(log hclog.Logger) {
	sopsLogMu.Lock()
	defer sopsLogMu.Unlock()
	sopsLog = log.Named("sops")
}

// SetSopsLogOutput sends sops's log messages to w. sops logs only warnings (for example about a
// comment that does not decrypt); the CLI can point them at its log output, or at io.Discard.
func SetSopsLogOutput(w io.Writer) {
	RouteSopsLogs(hclog.New(&hclog.LoggerOptions{Output: w, Level: hclog.Warn}))
}

// sopsLogRelay receives the helper's standard error and logs each line: a SopsLogLine at its
// level, anything else (a crash) as an error.
type sopsLogRelay struct {
	buf  []byte
	last string
}

func (r *sopsLogRelay) Write(p []byte) (int, error) {
	r.buf = append(r.buf, p...)
	for {
		i := bytes.IndexByte(r.buf, '\n')
		if i < 0 {
			break
		}
		r.line(r.buf[:i])
		r.buf = r.buf[i+1:]
	}
	return len(p), nil
}

func (r *sopsLogRelay) flush() {
	if len(r.buf) > 0 {
		r.line(r.buf)
		r.buf = nil
	}
}

func (r *sopsLogRelay) line(b []byte) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return
	}
	sopsLogMu.Lock()
	log := sopsLog
	sopsLogMu.Unlock()
	var l SopsLogLine
	if err := json.Unmarshal(b, &l); err != nil || l.Message == "" {
		r.last = SingleLine(string(b), 300)
		log.Error(r.last)
		return
	}
	args := make([]any, 0, 2*len(l.Fields))
	for k, v := range l.Fields {
		args = append(args, k, v)
	}
	level := hclog.LevelFromString(l.Level)
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	log.Log(level, l.Message, args...)
}

// lastLine is the helper's last line that was not a log message (how a crash ends), for an error.
func (r *sopsLogRelay) lastLine() string {
	if r.last == "" {
		return ""
	}
	return ": " + r.last
}
