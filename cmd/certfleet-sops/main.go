// Command certfleet-sops is certfleet's sops helper: certfleet starts it to decrypt or encrypt a
// sops document (one request on standard input, one answer on standard output), so that the sops
// library and the cloud KMS SDKs it links are loaded only when a sops file is read. It is
// installed beside certfleet and is not meant to be run by hand.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/certfleet/certfleet/core/secret/sopscodec"
	"golang.org/x/term"

	// The cloud KMSs are reached over TLS, also where the host has no CA roots (the OCI image is
	// built from scratch); a host's own roots, when it has any, are used instead.
	_ "golang.org/x/crypto/x509roots/fallback"
)

// version is set at build time (-ldflags -X main.version=…), as for certfleet.
var version = "dev"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-v") {
		fmt.Println("certfleet-sops", version)
		return
	}
	if len(os.Args) > 1 || term.IsTerminal(int(os.Stdin.Fd())) {
		fmt.Fprintln(os.Stderr, "certfleet-sops is the sops helper that certfleet starts itself; to decrypt or encrypt a file by hand use `certfleet secrets decrypt|encrypt FILE`")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sopscodec.RouteLogs(os.Stderr)
	if err := sopscodec.Serve(ctx, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "certfleet-sops:", err)
		os.Exit(1)
	}
}
