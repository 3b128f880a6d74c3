// Package pluginhost finds device plugin binaries, launches each once and shares it between every
// device of its kind, pins each binary's checksum, relays plugin logs, restarts a plugin that
// crashed, and shuts every plugin down when the host stops.
package pluginhost

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
)

// MinContractMinor is the oldest contract minor version this host can drive.
const MinContractMinor = 0

// Options configure a Host.
type Options struct {
	// Dirs are searched for certfleet-plugin-<name> binaries before PATH, in order.
	Dirs []string
	// SkipPATH leaves $PATH out of the search.
	SkipPATH bool
	// PinsFile records each plugin's trusted SHA-256. Empty turns pinning off (not recommended).
	PinsFile string
	// NoPinOnFirstUse leaves the pins file untouched: a plugin without a pin still starts (checked
	// at exec against the checksum it has now) but is not pinned. For commands that only look.
	NoPinOnFirstUse bool
	// PinCommand is what a user runs to re-pin a plugin, named in the error refusing a changed
	// binary; "certfleet plugins pin" when empty.
	PinCommand string
	// Logger receives the host's and (named per plugin) the plugins' logs.
	Logger hclog.Logger
	// StartTimeout bounds a plugin's start and handshake; 30s when zero.
	StartTimeout time.Duration
}

// Host manages plugin processes. It is safe for concurrent use.
type Host struct {
	opts Options
	log  hclog.Logger
	pins *pinStore

	mu      sync.Mutex
	plugins map[string]*Plugin
	closed  bool
}

// New returns a Host; no plugin is started until it is first used.
func New(opts Options) *Host {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.PinCommand == "" {
		opts.PinCommand = "certfleet plugins pin"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	h := &Host{opts: opts, log: opts.Logger, plugins: map[string]*Plugin{}}
	if opts.PinsFile != "" {
		h.pins = &pinStore{path: opts.PinsFile}
	}
	return h
}

// PinsFile is the file of pins ("" when pinning is off).
func (h *Host) PinsFile() string { return h.opts.PinsFile }

// Found is a plugin binary on the search path.
type Found struct {
	Name string
	Path string
}

func (h *Host) searchDirs() []string {
	dirs := append([]string(nil), h.opts.Dirs...)
	if !h.opts.SkipPATH {
		dirs = append(dirs, filepath.SplitList(os.Getenv("PATH"))...)
	}
	return dirs
}

// Discover lists every plugin binary found, one per name: the first in search order wins.
func (h *Host) Discover() []Found {
	seen := map[string]bool{}
	var out []Found
	for _, dir := range h.searchDirs() {
		if dir == "" {
			continue
		}
		matches, _ := filepath.Glob(filepath.Join(dir, sdk.BinaryPrefix+"*"+exeSuffix))
		sort.Strings(matches)
		for _, m := range matches {
			name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), sdk.BinaryPrefix), exeSuffix)
			if seen[name] || !isExecutable(m) {
				continue
			}
			seen[name] = true
			if abs, err := filepath.Abs(m); err == nil {
				m = abs
			}
			out = append(out, Found{Name: name, Path: m})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// exeSuffix ends every executable's name: ".exe" on Windows, nothing elsewhere.
var exeSuffix = func() string {
	if runtime.GOOS == "windows" {
		return ".exe"
	}
	return ""
}()

// BinaryName is the file name of the named plugin's binary on this system.
func BinaryName(name string) string { return sdk.BinaryPrefix + name + exeSuffix }

// PluginName is the plugin name of a binary's file name, if it is one.
func PluginName(file string) (string, bool) {
	if !strings.HasPrefix(file, sdk.BinaryPrefix) || !strings.HasSuffix(file, exeSuffix) {
		return "", false
	}
	name := strings.TrimSuffix(strings.TrimPrefix(file, sdk.BinaryPrefix), exeSuffix)
	return name, name != "" && !strings.ContainsAny(name, `/\`)
}

// isExecutable: a regular file with an execute bit (Windows has none: its .exe name says it).
func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && (runtime.GOOS == "windows" || st.Mode().Perm()&0o111 != 0)
}

// find returns the path of the named plugin's binary.
func (h *Host) find(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return "", fmt.Errorf("invalid plugin name %q", name)
	}
	for _, dir := range h.searchDirs() {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, BinaryName(name))
		if isExecutable(p) {
			return filepath.Abs(p)
		}
	}
	return "", fmt.Errorf("plugin %q not found: no executable %s in %s; install it there (`certfleet plugins install BUNDLE`) or add its directory to plugins.dirs",
		name, BinaryName(name), strings.Join(h.searchDirs(), string(filepath.ListSeparator)))
}

// Plugin returns the handle for the named plugin. The process starts on the first call and is
// shared by every caller; after a crash the next call starts a new one.
func (h *Host) Plugin(name string) (*Plugin, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("plugin host is shut down")
	}
	if p, ok := h.plugins[name]; ok {
		return p, nil
	}
	path, err := h.find(name)
	if err != nil {
		return nil, err
	}
	p := &Plugin{host: h, name: name, path: path, log: h.log.Named("plugin")}
	h.plugins[name] = p
	return p, nil
}

// Checksum returns the binary's SHA-256 and its pin, if pinned.
func (h *Host) Checksum(name string) (sum string, pin Pin, pinned bool, err error) {
	path, err := h.find(name)
	if err != nil {
		return "", Pin{}, false, err
	}
	if sum, err = fileSHA256(path); err != nil {
		return "", Pin{}, false, fmt.Errorf("checksum %s: %w", path, err)
	}
	if h.pins == nil {
		return sum, Pin{}, false, nil
	}
	pin, pinned, err = h.pins.get(name)
	return sum, pin, pinned, err
}

// Pin trusts the named plugin's current binary, replacing any earlier pin.
func (h *Host) Pin(name string) (string, error) {
	if h.pins == nil {
		return "", errors.New("plugin pinning is off: no pins file is configured")
	}
	path, err := h.find(name)
	if err != nil {
		return "", err
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return "", fmt.Errorf("checksum %s: %w", path, err)
	}
	if err := h.pins.set(name, path, sum); err != nil {
		return "", err
	}
	return sum, nil
}

// verifiedChecksum checks the binary against its pin (pinning it on first use) and returns the
// checksum go-plugin re-verifies when it starts the process.
func (h *Host) verifiedChecksum(name, path string) ([]byte, error) {
	if h.pins == nil {
		return nil, nil
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return nil, fmt.Errorf("checksum %s: %w", path, err)
	}
	pin, ok, err := h.pins.get(name)
	if err != nil {
		return nil, err
	}
	switch {
	case !ok && h.opts.NoPinOnFirstUse:
		h.log.Debug("plugin is not pinned; starting it without pinning", "plugin", name, "path", path, "sha256", sum)
	case !ok:
		if err := h.pins.set(name, path, sum); err != nil {
			return nil, fmt.Errorf("pin plugin %s: %w", name, err)
		}
		h.log.Info("pinned plugin binary on first use", "plugin", name, "path", path, "sha256", sum)
	case pin.SHA256 != sum:
		return nil, &ChecksumError{Name: name, Path: path, Got: sum, Pinned: pin, PinCommand: h.opts.PinCommand}
	}
	return hex.DecodeString(sum)
}

// ChecksumError refuses a plugin binary that changed since it was pinned.
type ChecksumError struct {
	Name, Path string
	Got        string
	Pinned     Pin
	PinCommand string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("refusing plugin %q: %s has sha256 %s, but %s was pinned on %s; if you upgraded the plugin on purpose, run `%s %s` (or install the new bundle with `certfleet plugins install`)",
		e.Name, e.Path, e.Got, e.Pinned.SHA256, e.Pinned.PinnedAt.Format(time.RFC3339), e.PinCommand, e.Name)
}

// Close stops every plugin process and refuses new ones.
func (h *Host) Close() {
	h.mu.Lock()
	h.closed = true
	plugins := make([]*Plugin, 0, len(h.plugins))
	for _, p := range h.plugins {
		plugins = append(plugins, p)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range plugins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop()
		}()
	}
	wg.Wait()
}

// pluginEnv is the whole environment a plugin gets: enough to run and reach the network, and
// none of the host's other variables, which may hold secrets meant for the core alone.
func pluginEnv(level hclog.Level) []string {
	env := []string{"CERTFLEET_PLUGIN_LOG_LEVEL=" + level.String()}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR",
		"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// Plugin is one plugin, started on demand. It implements sdk.Plugin; every call passes its ctx
// (deadline and cancellation) into the plugin process.
type Plugin struct {
	host *Host
	name string
	path string
	log  hclog.Logger

	mu         sync.Mutex
	client     *plugin.Client
	rpc        plugin.ClientProtocol
	impl       sdk.Plugin
	generation int
	// info is the running process's GetInfo answer, asked once when it started: it does not
	// change while the process runs, so Info answers from it.
	info sdk.Info
}

// Name of the plugin.
func (p *Plugin) Name() string { return p.name }

// Path of its binary.
func (p *Plugin) Path() string { return p.path }

// live returns the running plugin, starting it when there is none.
func (p *Plugin) live(ctx context.Context) (sdk.Plugin, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.impl != nil && !p.client.Exited() {
		return p.impl, p.generation, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, sdk.FromContext(ctx)
	}
	p.discardLocked()
	sum, err := p.host.verifiedChecksum(p.name, p.path)
	if err != nil {
		return nil, 0, err
	}
	cfg := sdk.ClientConfig(p.path, sum, pluginLogger{p.log})
	cfg.SkipHostEnv = true
	cfg.Cmd.Env = pluginEnv(p.host.log.GetLevel())
	cfg.StartTimeout = p.host.opts.StartTimeout
	setParentDeathSignal(cfg.Cmd)
	client := plugin.NewClient(cfg)
	impl, err := sdk.Dispense(client)
	if err != nil {
		client.Kill()
		return nil, 0, p.startError(err)
	}
	rpc, _ := client.Client()
	info, err := impl.Info(ctx)
	if err != nil {
		client.Kill()
		return nil, 0, fmt.Errorf("plugin %s: GetInfo: %w", p.name, err)
	}
	if info.Name != p.name {
		client.Kill()
		return nil, 0, fmt.Errorf("plugin binary %s calls itself %q, not %q; rename the binary or fix the plugin", p.path, info.Name, p.name)
	}
	if info.ContractMinorVersion < MinContractMinor {
		client.Kill()
		return nil, 0, fmt.Errorf("plugin %s speaks contract v1.%d; this certfleet needs v1.%d or newer: upgrade the plugin",
			p.name, info.ContractMinorVersion, MinContractMinor)
	}
	p.client, p.rpc, p.impl, p.info = client, rpc, impl, info
	p.generation++
	p.log.Debug("plugin started", "plugin", p.name, "path", p.path, "version", info.Version, "contract_minor", info.ContractMinorVersion)
	return impl, p.generation, nil
}

func (p *Plugin) startError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "checksums did not match"):
		return fmt.Errorf("refusing plugin %q: %s changed while it was being started (checksum mismatch): %w", p.name, p.path, err)
	// go-plugin's wording ("incompatible API version with plugin. Plugin version: 2, Client
	// versions: [1]") changed case across releases.
	case strings.Contains(strings.ToLower(msg), "incompatible api version"):
		return fmt.Errorf("refusing plugin %s (%s): it speaks another major version of the contract than this certfleet (v%d); install the plugin from the same certfleet release: %w",
			p.name, p.path, sdk.ProtocolVersion, err)
	}
	return fmt.Errorf("start plugin %s (%s): %w", p.name, p.path, err)
}

func (p *Plugin) discardLocked() {
	if p.client != nil {
		p.client.Kill()
	}
	p.client, p.rpc, p.impl = nil, nil, nil
}

func (p *Plugin) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.discardLocked()
}

// checkCrash decides whether a failed call died with the plugin process. If so, the process is
// discarded so that the next call starts a new one, and the caller gets a retryable error.
func (p *Plugin) checkCrash(generation int, err error) error {
	code := sdk.CodeOf(err)
	if code != codes.Unavailable && code != codes.Internal && code != codes.Canceled {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.generation != generation || p.client == nil {
		return err
	}
	if !p.client.Exited() && p.rpc.Ping() == nil {
		return err
	}
	p.log.Warn("plugin process died during a call; it will be restarted on the next call", "plugin", p.name)
	p.discardLocked()
	return &sdk.Error{Code: codes.Unavailable, Reason: sdk.ReasonPluginCrashed,
		Message: fmt.Sprintf("plugin %s exited during the call (it is restarted on the next call)", p.name), Err: err}
}

func call[T any](ctx context.Context, p *Plugin, fn func(sdk.Plugin) (T, error)) (T, error) {
	var zero T
	impl, gen, err := p.live(ctx)
	if err != nil {
		return zero, err
	}
	res, err := fn(impl)
	if err != nil {
		return zero, p.checkCrash(gen, err)
	}
	return res, nil
}

// Info implements sdk.Plugin: the answer the plugin gave when it started (starting it if needed),
// so that every command makes one GetInfo call per plugin, however many certificates ask.
func (p *Plugin) Info(ctx context.Context) (sdk.Info, error) {
	if _, _, err := p.live(ctx); err != nil {
		return sdk.Info{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info, nil
}

// CheckTarget implements sdk.Plugin.
func (p *Plugin) CheckTarget(ctx context.Context, t sdk.Target) (sdk.TargetInfo, error) {
	return call(ctx, p, func(i sdk.Plugin) (sdk.TargetInfo, error) { return i.CheckTarget(ctx, t) })
}

// Inventory implements sdk.Plugin.
func (p *Plugin) Inventory(ctx context.Context, t sdk.Target) ([]sdk.DeviceCertificate, error) {
	return call(ctx, p, func(i sdk.Plugin) ([]sdk.DeviceCertificate, error) { return i.Inventory(ctx, t) })
}

// GenerateCSR implements sdk.Plugin.
func (p *Plugin) GenerateCSR(ctx context.Context, t sdk.Target, req sdk.CSRRequest) (sdk.CSR, error) {
	return call(ctx, p, func(i sdk.Plugin) (sdk.CSR, error) { return i.GenerateCSR(ctx, t, req) })
}

// ImportCert implements sdk.Plugin.
func (p *Plugin) ImportCert(ctx context.Context, t sdk.Target, req sdk.ImportRequest) (sdk.ImportResult, error) {
	return call(ctx, p, func(i sdk.Plugin) (sdk.ImportResult, error) { return i.ImportCert(ctx, t, req) })
}

// Bind implements sdk.Plugin.
func (p *Plugin) Bind(ctx context.Context, t sdk.Target, req sdk.BindRequest) (sdk.BindResult, error) {
	return call(ctx, p, func(i sdk.Plugin) (sdk.BindResult, error) { return i.Bind(ctx, t, req) })
}

// Commit implements sdk.Plugin.
func (p *Plugin) Commit(ctx context.Context, t sdk.Target, req sdk.CommitRequest) (sdk.CommitResult, error) {
	return call(ctx, p, func(i sdk.Plugin) (sdk.CommitResult, error) { return i.Commit(ctx, t, req) })
}

// Rollback implements sdk.Plugin.
func (p *Plugin) Rollback(ctx context.Context, t sdk.Target, token []byte) error {
	_, err := call(ctx, p, func(i sdk.Plugin) (struct{}, error) { return struct{}{}, i.Rollback(ctx, t, token) })
	return err
}

// Cleanup implements sdk.Plugin.
func (p *Plugin) Cleanup(ctx context.Context, t sdk.Target, objects []sdk.ObjectRef) ([]sdk.CleanupResult, error) {
	return call(ctx, p, func(i sdk.Plugin) ([]sdk.CleanupResult, error) { return i.Cleanup(ctx, t, objects) })
}

// CheckBindings implements sdk.BindingChecker; against a plugin of contract 1.0 it returns an
// error for which sdk.IsUnimplemented is true.
func (p *Plugin) CheckBindings(ctx context.Context, t sdk.Target, req sdk.CheckBindingsRequest) (sdk.CheckBindingsResult, error) {
	return call(ctx, p, func(i sdk.Plugin) (sdk.CheckBindingsResult, error) {
		checker, ok := i.(sdk.BindingChecker)
		if !ok {
			return sdk.CheckBindingsResult{}, &sdk.Error{Code: codes.Unimplemented, Reason: sdk.ReasonUnsupported, Message: "plugin " + p.name + " does not implement CheckBindings"}
		}
		return checker.CheckBindings(ctx, t, req)
	})
}

// PID returns the process id of the running plugin, or 0; for diagnostics and tests.
func (p *Plugin) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil || p.client.Exited() {
		return 0
	}
	if rc := p.client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

var (
	_ sdk.Plugin         = (*Plugin)(nil)
	_ sdk.BindingChecker = (*Plugin)(nil)
)
