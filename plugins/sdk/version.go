package sdk

import "runtime/debug"

// releaseVersion is stamped by a release build:
//
//	go build -ldflags "-X github.com/certfleet/certfleet/plugins/sdk.releaseVersion=1.2.3"
//
// so that every binary of a release (the core and each plugin) reports the release's version.
var releaseVersion string

// BuildVersion is the version a plugin (or the core) reports: the release version stamped by the
// build; else the module version the Go toolchain recorded (a third-party plugin installed with
// `go install example.com/plugin@v1.2.3` reports v1.2.3); else "dev".
func BuildVersion() string {
	if releaseVersion != "" {
		return releaseVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
