package haproxyruntime

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// The Runtime API ("stats socket", HAProxy management guide section 9.3) in its non-interactive
// mode: one connection per command; the command line, an optional payload ("<<\n" ... empty line),
// the answer, and HAProxy closes the connection. The socket has no authentication of its own: who
// can connect can change certificates (the bind line's "level admin").

// maxAnswer bounds what one command may print (an Inventory of many certificates fits easily).
const maxAnswer = 8 << 20

// client speaks to one HAProxy Runtime API for one call.
type client struct {
	t       sdk.Target
	hostort string
	tls     *tls.Config // nil for a plain TCP socket
}

// newClient checks the address: tls://host:port (a stats socket bound with "ssl crt ...",
// verified as any TLS server), or tcp://host:port, which carries keys in clear and is therefore
// accepted only on loopback unless the device sets plaintext_socket: true.
func newClient(t sdk.Target) (*client, error) {
	u, err := url.Parse(t.Address)
	if err != nil || u.Host == "" || u.Port() == "" || (u.Scheme != "tcp" && u.Scheme != "tls") || (u.Path != "" && u.Path != "/") {
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest,
			"device %s: address %q must be tls://host:port (a stats socket with ssl) or tcp://127.0.0.1:port", t.Name, t.Address)
	}
	c := &client{t: t, hostort: u.Host}
	if u.Scheme == "tls" {
		c.tls, err = sdk.TLSClientConfig(t.TLS)
		if err != nil {
			return nil, err
		}
		if c.tls.ServerName == "" {
			c.tls.ServerName = u.Hostname()
		}
		return c, nil
	}
	plain, err := t.Options.Bool(optPlaintextSocket, false)
	if err != nil {
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "device %s: option %s: %v", t.Name, optPlaintextSocket, err)
	}
	if !plain && !isLoopback(u.Hostname()) {
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest,
			"device %s: %s is a plain TCP socket on another host, and the plugin sends private keys over it: bind the stats socket with ssl and use tls://, or set options.%s: true if the path is protected otherwise",
			t.Name, t.Address, optPlaintextSocket)
	}
	return c, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// run sends one command (and its payload, if any) and returns HAProxy's answer. The connection
// is bound to ctx: when ctx ends the connection is closed and the call returns the context's error.
func (c *client) run(ctx context.Context, command, payload string) (string, error) {
	if err := sdk.FromContext(ctx); err != nil {
		return "", err
	}
	// A newline would end the command and start another; ';' separates commands on one line and
	// '\' escapes [MG 9.3]. Names never need them (checkName), so this only guards.
	if strings.ContainsAny(command, "\r\n;\\") {
		return "", sdk.InvalidArgument(sdk.ReasonInvalidRequest, "device %s: refusing to send %q: a name holds a newline, ';' or '\\'", c.t.Name, verb(command))
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.hostort)
	if err != nil {
		return "", c.transportError(ctx, command, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	// ctx ending closes the connection (above), so a failed read then reports ctx's error; the
	// connection's own deadline is only a backstop, a little later, for a ctx without one.
	backstop := time.Now().Add(2 * time.Minute)
	if dl, ok := ctx.Deadline(); ok {
		backstop = dl.Add(time.Second)
	}
	_ = conn.SetDeadline(backstop)
	if c.tls != nil {
		tc := tls.Client(conn, c.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return "", c.transportError(ctx, command, err)
		}
		conn = tc
	}
	var req strings.Builder
	req.WriteString(command)
	if payload != "" {
		// A payload ends at the first empty line (management guide 9.3), so none may be inside.
		req.WriteString(" <<\n")
		for _, line := range strings.Split(strings.ReplaceAll(payload, "\r\n", "\n"), "\n") {
			if strings.TrimSpace(line) != "" {
				req.WriteString(line)
				req.WriteString("\n")
			}
		}
	}
	req.WriteString("\n")
	if _, err := io.WriteString(conn, req.String()); err != nil {
		return "", c.transportError(ctx, command, err)
	}
	data, err := io.ReadAll(io.LimitReader(conn, maxAnswer))
	if err != nil {
		return "", c.transportError(ctx, command, err)
	}
	if err := sdk.FromContext(ctx); err != nil {
		// The answer may be complete, but the caller has given up and recorded a failure.
		return "", err
	}
	answer := strings.TrimRight(string(data), "\n")
	if strings.HasPrefix(answer, "Permission denied") {
		return "", sdk.PermissionDenied("device %s: %q needs a stats socket with \"level admin\"", c.t.Name, verb(command)).WithVendor("runtime-api", answer)
	}
	if strings.HasPrefix(answer, "Unknown command") {
		return "", sdk.FailedPrecondition(sdk.ReasonUnsupported, "device %s does not know %q: HAProxy 3.1 or later is needed", c.t.Name, verb(command)).WithVendor("runtime-api", firstLine(answer))
	}
	return answer, nil
}

// verb is the command without its arguments, for messages (arguments may be long).
func verb(command string) string {
	f := strings.Fields(command)
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func (c *client) transportError(ctx context.Context, command string, err error) *sdk.Error {
	// A failed certificate check is not retryable and names the fix; anything else is Unavailable.
	e := sdk.TransportError(ctx, c.t.Address, err)
	e.Message = fmt.Sprintf("%s (command %q)", e.Message, verb(command))
	return e
}

// refused is HAProxy's answer to a command that did not do what was asked. HAProxy answers every
// command with text; the failures this plugin acts on are recognised by their wording in
// src/ssl_ckch.c and src/ssl_crtlist.c.
func refused(t sdk.Target, command, answer string) *sdk.Error {
	return sdk.Internal(sdk.ReasonDeviceError, "device %s refused %q", t.Name, verb(command)).WithVendor("runtime-api", answer)
}

// checkName refuses a crt-list or store name the Runtime API cannot take as one argument: the
// command line splits on spaces, ends at a newline, and ';' starts another command [MG 9.3].
func checkName(what, name string) error {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == ';' || r == '\\' || r == 0x7f }) {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "%s %q: a HAProxy name has no spaces, control characters, ';' or '\\'", what, name)
	}
	return nil
}
