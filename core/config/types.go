// Package config loads and checks certfleet's YAML configuration (version v1) from one file or a
// directory of files. Every problem is reported at once, with file, line, field and a hint,
// before anything is contacted. Secrets are references (${env:NAME}, ${file:PATH},
// ${sops:PATH#key.path}) that a Resolver expands; validation only checks their form.
package config

import (
	"time"

	"github.com/certfleet/certfleet/core/issuer/acme"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// DefaultPath is where the configuration is read from when no --config is given.
const DefaultPath = "/etc/certfleet"

// Config is the whole configuration, with defaults applied to every certificate.
type Config struct {
	// Files are the files read, in order.
	Files   []string
	State   State
	Logging Logging
	Runtime Runtime
	Plugins Plugins
	// Daemon is set when the configuration has a daemon section.
	Daemon        *Daemon
	Notifications Notifications
	Issuers       map[string]*Issuer
	Devices       map[string]*Device
	Certificates  map[string]*Certificate
}

// State says where the state database lives: an SQLite file (Path), or a PostgreSQL database
// shared by several instances (Driver "postgres", DSN); see state.go.
type State struct {
	Path   string
	Driver string // sqlite (default) | postgres
	DSN    string
	// LeaseTTL is how long a device claim outlives its holder's last renewal (postgres).
	LeaseTTL time.Duration
	// Site limits this instance to the devices of that site (--site overrides it).
	Site string
	// Retention says how much run history the state keeps; nil: the state's default (30 days).
	Retention *Retention
}

// Retention of the run history: a run's results are pruned once it is older than MaxAge or
// beyond the newest MaxRuns runs (0: that limit is not set). Each certificate's newest result
// is always kept.
type Retention struct {
	MaxAge  time.Duration
	MaxRuns int
}

// Logging settings.
type Logging struct {
	// Level is the terminal's level (trace|debug|info|warn|error); when unset, info on a
	// terminal and warn otherwise. --log-level wins.
	Level  string
	Format string // text|json
	// File, when File.Path is set, is a rotated log file with its own level.
	File LogFile
}

// Runtime bounds concurrency and waiting.
type Runtime struct {
	Workers   int
	PerIssuer int
	PerDevice int
	// CollectTimeout is how long a run polls a pending order before leaving it for the next run.
	CollectTimeout time.Duration
	// CallTimeout bounds each plugin call.
	CallTimeout time.Duration
	// RevocationCheckInterval is how often the CA is asked about each deployed certificate.
	RevocationCheckInterval time.Duration
	// VerifyAttempts and VerifyWait: how often, and how far apart, an endpoint is read after a
	// commit before its served certificate is declared wrong (a data plane may lag the commit);
	// zero means the engine's defaults (3, 1s).
	VerifyAttempts int
	VerifyWait     time.Duration
}

// Plugins settings.
type Plugins struct {
	Dirs     []string
	PinsFile string
	// SearchPath lets plugins be found on $PATH, after every plugin directory. Off by default: a
	// binary that happens to be on $PATH is not a plugin anyone installed for certfleet.
	SearchPath bool
	// PublicKey is a minisign public key file: `certfleet plugins install` then accepts only a
	// bundle listed in a SHA256SUMS signed by that key.
	PublicKey string
}

// TLS is how a management or CA endpoint's certificate is verified.
type TLS struct {
	// CABundlePEM is the content of the configured ca_bundle (a file path or inline PEM).
	CABundlePEM        string
	InsecureSkipVerify bool
	ServerName         string
}

// Issuer is one CA account.
type Issuer struct {
	Name        string
	Type        string // scm | acme
	Concurrency int
	SCM         *SCM
	ACME        *acme.Config
	Position    Position
}

// SCM is a Sectigo Certificate Manager account.
type SCM struct {
	// API is admin (Admin API / legacy SSL API) or enrollment (a REST Enrollment account).
	API          string
	BaseURL      string
	CustomerURI  string
	Auth         string // oauth2 | legacy
	ClientID     string
	ClientSecret string
	TokenURL     string
	Login        string
	Password     string
	OrgID        int
	TLS          TLS
	Timeout      time.Duration
	// InitialDelay before the first collect of a new order.
	InitialDelay time.Duration
	// Lookup is an Admin API account used by an enrollment issuer to find lost orders.
	Lookup *SCM
}

// Device is one appliance (or pemdir directory) driven by a plugin.
type Device struct {
	Name        string
	Plugin      string
	Address     string
	TLS         TLS
	Credentials sdk.Credentials
	Options     sdk.Options
	Concurrency int
	// Site is the device's site label (a data centre, a PCI zone): instances with a site work
	// only on its devices.
	Site string
	// AllowPlainHTTP is the user's opt-in to an http:// address (credentials cross the network
	// unencrypted); it reaches the plugin as target option allow_plain_http.
	AllowPlainHTTP bool
	Position       Position
}

// Certificate is one certificate to keep alive, with defaults applied.
type Certificate struct {
	Name    string
	Device  string
	Issuer  string
	Subject sdk.Subject
	SANs    sdk.SANs
	Key     sdk.KeySpec
	// RenewBefore, or RenewFraction (a share of the lifetime, 0..1) when set.
	RenewBefore   time.Duration
	RenewFraction float64
	Bindings      []sdk.Binding
	// IssuerOptions are defaults' merged with the certificate's own; certificates without their
	// own share defaults' map: it is read, never written.
	IssuerOptions map[string]any
	Enabled       bool
	// CleanupAdopted lets certfleet delete an adopted certificate's objects once it has replaced
	// them (by default they stay: someone else made them).
	CleanupAdopted bool
	Position       Position
	// BindingPositions are where each binding was written, for later messages.
	BindingPositions []Position
	// Verify is where the served certificate is checked when the plugin does not know; nil when
	// not configured.
	Verify *VerifyEndpoint
	// OnVerifyFailure is OnVerifyKeep or OnVerifyRollback.
	OnVerifyFailure string
}
