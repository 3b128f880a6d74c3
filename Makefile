# certfleet — see README.md. Every tool is installed into .tools/ at a pinned version from the Go
# module proxy, so a fresh machine needs only Go (and, for the sops/PGP tests, gnupg).
GO       ?= go
BIN      := $(CURDIR)/bin
TOOLS    := $(CURDIR)/.tools/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Every binary reports the release version: the core through main.version, each plugin through
# the SDK (sdk.BuildVersion). Builds are static (CGO_ENABLED=0: no glibc needed, so they run on
# RHEL 8, Ubuntu 20.04, Debian 11) and keep the checkout path and build ids out (-trimpath, -buildid=).
LDFLAGS  := -buildid= -X main.version=$(VERSION) -X github.com/certfleet/certfleet/plugins/sdk.releaseVersion=$(VERSION)
GOBUILD  := CGO_ENABLED=0 $(GO) build -trimpath
# The main package of every plugin; a new plugins/<name>/cmd/certfleet-plugin-<name> joins by itself.
PLUGIN_CMDS := $(wildcard ./plugins/*/cmd/certfleet-plugin-*)
export PATH := $(TOOLS):$(PATH)

BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
STATICCHECK_VERSION        := v0.8.2
SOPS_VERSION               := v3.13.3
NFPM_VERSION               := v2.48.0
MINISIGN_VERSION           := v0.3.0
CYCLONEDX_GOMOD_VERSION    := v1.10.0

.PHONY: all build test test-short test-report-browser fleet-test state-year lint proto proto-check demo bench bench-fleet fuzz reliability tools clean dist dist-check cross-check repro-check

all: build

## build: the core, the simulators and every plugin into bin/
build:
	$(GOBUILD) -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/... ./examples/plugin-pemdir/cmd/... $(PLUGIN_CMDS)

## cross-check: the core (with its sops helper) and every plugin compile for Windows and linux/arm64 (CI)
cross-check:
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/certfleet ./cmd/certfleet-sops ./examples/plugin-pemdir/cmd/... $(PLUGIN_CMDS)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null ./cmd/certfleet ./cmd/certfleet-sops $(PLUGIN_CMDS)

## dist: the release into dist/ (make dist VERSION=1.2.3 [SIGNING_KEY=minisign.key]): per-vendor
## bundles and a full one per platform, .deb/.rpm, the OCI image of the linux targets
## (certfleet_<version>_oci.tar), SBOMs, SHA256SUMS (+ .minisig); scripts/dist
DIST_TARGETS ?= linux/amd64,linux/arm64,windows/amd64
dist: $(TOOLS)/nfpm $(TOOLS)/cyclonedx-gomod $(TOOLS)/minisign
	@case "$(origin VERSION)" in command*|environment*) ;; *) echo "make dist needs VERSION=x.y.z"; exit 2;; esac
	$(GO) run ./scripts/dist -version $(VERSION) -out dist -targets $(DIST_TARGETS) \
		-nfpm $(TOOLS)/nfpm -cyclonedx-gomod $(TOOLS)/cyclonedx-gomod -minisign $(TOOLS)/minisign -signing-key "$(SIGNING_KEY)"

## dist-check: what CI checks of a release: static binaries, checksums and signature, the Citrix
## bundle unpacked alone validating and enrolling against certfleet-sim, an upgrade to v2, and the
## OCI image verified, unpacked and run as its user (scripts/imagecheck; chrooted when root)
dist-check: build $(TOOLS)/nfpm $(TOOLS)/cyclonedx-gomod $(TOOLS)/minisign
	./scripts/dist-check.sh

## repro-check: the same commit built in two checkout paths (the second with an empty build
## cache) gives byte-identical bundles and packages. Slow: several minutes of compiling.
repro-check: $(TOOLS)/nfpm $(TOOLS)/cyclonedx-gomod
	./scripts/repro-check.sh

## test: every test, with the race detector
test: $(TOOLS)/sops
	$(GO) test -race -count=1 -timeout 15m ./...

## fuzz: every fuzz target for FUZZEXECS inputs each (their seeds also run in `make test`).
## A count, not a duration: with -fuzztime=<duration> go1.26's fuzz coordinator can fail a clean
## run with a bare "context deadline exceeded" when the deadline races a worker (golang/go#75804,
## fixed in go1.27); a count sets no deadline.
FUZZEXECS ?= 200000
FUZZ_TARGETS := \
	./core/config:FuzzLoad \
	./core/engine:FuzzVerifyPEM \
	./core/secret:FuzzCredentials \
	./core/secret/sopscodec:FuzzSopsDocuments \
	./core/issuer/scm:FuzzParseResponses \
	./plugins/citrix-nitro/nitro:FuzzNITROAnswers \
	./plugins/paloalto-panos/panosclient:FuzzPANOSAnswers \
	./plugins/f5-bigip/icontrol:FuzzIControlAnswers
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg) for $(FUZZEXECS) inputs"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZEXECS)x $$pkg; \
	done

## reliability: the long form of the reliability suite (SIGTERM/SIGKILL at random moments, many
## rounds); `make test` runs its short form
reliability: $(TOOLS)/sops
	CERTFLEET_RELIABILITY=long $(GO) test -count=1 -timeout 90m -run 'TestReliability' -v ./e2e 2>&1 | tee reliability.log | grep -E '^(reliability:|--- FAIL|FAIL|ok)'
	@! grep -q -E '^(--- FAIL|FAIL)' reliability.log

## test-report-browser: the HTML report opened in headless Chromium (apt-get install -y chromium);
## `make test` runs the same test but skips the browser part when Chromium is absent
test-report-browser: $(TOOLS)/sops
	CERTFLEET_REQUIRE_BROWSER=1 $(GO) test -count=1 -run TestMigrateAdoptInventoryReport ./e2e/

## fleet-test: three certfleet instances on one PostgreSQL over 300 certificates on 30 devices,
## one SIGKILLed mid-run (make test runs a smaller fleet)
fleet-test:
	CERTFLEET_FLEET_TEST=full $(GO) test -count=1 -timeout 10m -run TestSharedFleet -v ./e2e/

## state-year: a year of hourly runs over 10,000 certificates written through the state store
## (make test runs 40 days of it); the state must stay under 200 MB
state-year:
	CERTFLEET_STATE_YEAR_DAYS=365 $(GO) test -count=1 -timeout 60m -run TestAYearOfHourlyRunsStaysSmall -v ./core/state/

## lint: gofmt, go vet, staticcheck
lint: $(TOOLS)/staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	staticcheck ./...

## proto: regenerate the Go code of the plugin contract, and lint the contract
proto: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc
	buf lint
	buf generate

## proto-check: fail if the committed generated code is not what `make proto` makes
proto-check: proto
	@git diff --exit-code -- proto/ || (echo "generated code in proto/ is stale: run 'make proto' and commit"; exit 1)

## demo: run the main job against the built-in simulators
demo: build
	./scripts/demo.sh

## bench: the benchmarks whose figures go in the issue notes
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## bench-fleet: the fleet figures of issue #24, printed as a table (docs/performance.md): worlds
## of 10,000 and 20,000 certificates, a run at 50 ms latency, 100 ACME certificates. About 13 min;
## BENCH_FLEET_FLAGS="-peers" adds certbot and lego (apt-get, about +6 min), "-quick" is a smoke run
BENCH_FLEET_FLAGS ?=
bench-fleet: build
	$(GO) run ./scripts/benchfleet -bin $(BIN) $(BENCH_FLEET_FLAGS)

tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc $(TOOLS)/staticcheck $(TOOLS)/sops

# Release tools. nfpm writes the .deb/.rpm (reproducibly, from SOURCE_DATE_EPOCH); minisign signs
# SHA256SUMS; cyclonedx-gomod writes each binary's SBOM from the module list Go embeds in it.
$(TOOLS)/nfpm:
	GOBIN=$(TOOLS) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
$(TOOLS)/minisign:
	GOBIN=$(TOOLS) $(GO) install aead.dev/minisign/cmd/minisign@$(MINISIGN_VERSION)
$(TOOLS)/cyclonedx-gomod:
	GOBIN=$(TOOLS) $(GO) install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_GOMOD_VERSION)

$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
# The real sops CLI, for the tests that check our encrypted files against it both ways.
$(TOOLS)/sops:
	GOBIN=$(TOOLS) $(GO) install github.com/getsops/sops/v3/cmd/sops@$(SOPS_VERSION)
$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

clean:
	rm -rf $(BIN) .tools dist
