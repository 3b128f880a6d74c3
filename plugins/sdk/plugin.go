// Package sdk is what a certfleet device plugin is built on: the Go interface a plugin implements,
// Serve to run it as a go-plugin process, the adapters that carry calls (with their deadlines and
// cancellation) across the process boundary, and error helpers for the contract's gRPC codes.
package sdk

import (
	"context"

	plugin "github.com/hashicorp/go-plugin"
)

// ContractMinorVersion is the minor version of the v1 contract this SDK speaks. 1 added
// CheckBindings (BindingChecker).
const ContractMinorVersion = 1

// ProtocolVersion is the contract's major version as negotiated by go-plugin.
const ProtocolVersion = 1

// PluginKey is the name the device service is dispensed under.
const PluginKey = "device"

// BinaryPrefix starts the file name of every plugin binary: certfleet-plugin-<name>.
const BinaryPrefix = "certfleet-plugin-"

// Handshake keeps a plugin from being run by hand or by another host; it is not a security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "CERTFLEET_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "7f1c9e0b4d2a4c3e9b8f6a5d1e0c2b3a-device",
}

// Plugin is what a device plugin implements. Every method must honour ctx: its deadline is the
// core's, and it is cancelled when the core gives up. One plugin value serves every device of its
// kind, concurrently, so methods must be safe for concurrent use and keep no per-device state that
// a call does not own.
type Plugin interface {
	// Info describes the plugin; it needs no device.
	Info(ctx context.Context) (Info, error)
	// CheckTarget logs in and reports what the device is.
	CheckTarget(ctx context.Context, t Target) (TargetInfo, error)
	// Inventory lists every certificate on the device and where it is bound.
	Inventory(ctx context.Context, t Target) ([]DeviceCertificate, error)
	// GenerateCSR makes a new key pair on the device, with new object names, and a CSR for it.
	GenerateCSR(ctx context.Context, t Target, req CSRRequest) (CSR, error)
	// ImportCert installs a signed leaf and chain against req.KeyRef; nothing is live yet.
	ImportCert(ctx context.Context, t Target, req ImportRequest) (ImportResult, error)
	// Bind points the bindings at the certificate and returns how to undo that.
	Bind(ctx context.Context, t Target, req BindRequest) (BindResult, error)
	// Commit makes staged changes durable and live.
	Commit(ctx context.Context, t Target, req CommitRequest) (CommitResult, error)
	// Rollback restores what a rollback token describes.
	Rollback(ctx context.Context, t Target, token []byte) error
	// Cleanup removes the objects, skipping (with a reason) any that is still bound.
	Cleanup(ctx context.Context, t Target, objects []ObjectRef) ([]CleanupResult, error)
}

// PluginSet is the go-plugin plugin map for a device plugin; impl is nil on the host side.
func PluginSet(impl Plugin) plugin.PluginSet {
	return plugin.PluginSet{PluginKey: &grpcPlugin{impl: impl}}
}
