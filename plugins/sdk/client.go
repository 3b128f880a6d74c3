package sdk

import (
	"crypto/sha256"
	"fmt"
	"os/exec"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
)

// ClientConfig is how a host (the core, or the conformance suite) launches the plugin binary at
// path: gRPC only, AutoMTLS, and, when checksum is set, go-plugin refuses a binary whose SHA-256
// differs at start time.
func ClientConfig(path string, checksum []byte, logger hclog.Logger) *plugin.ClientConfig {
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          PluginSet(nil),
		Cmd:              exec.Command(path),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           logger,
	}
	if len(checksum) > 0 {
		cfg.SecureConfig = &plugin.SecureConfig{Checksum: checksum, Hash: sha256.New()}
	}
	return cfg
}

// Dispense connects to a started client and returns the plugin it serves.
func Dispense(client *plugin.Client) (Plugin, error) {
	rpc, err := client.Client()
	if err != nil {
		return nil, fmt.Errorf("connect to plugin: %w", err)
	}
	raw, err := rpc.Dispense(PluginKey)
	if err != nil {
		return nil, fmt.Errorf("dispense %q: %w", PluginKey, err)
	}
	p, ok := raw.(Plugin)
	if !ok {
		return nil, fmt.Errorf("plugin served %T, not a device plugin", raw)
	}
	return p, nil
}
