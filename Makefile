# certfleet — see README.md. Every tool is installed into .tools/ at a pinned version from the Go
# module proxy, so a fresh machine needs only Go (and, for the sops/PGP tests, gnupg).
GO       ?= go
BIN      := $(CURDIR)/bin
TOOLS    := $(CURDIR)/.tools/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
export PATH := $(TOOLS):$(PATH)

BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
STATICCHECK_VERSION        := v0.8.2
SOPS_VERSION               := v3.13.3

.PHONY: all build test test-short test-report-browser lint proto proto-check demo bench tools clean

all: build

## build: the core, the simulators and every plugin into bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/... ./examples/plugin-pemdir/cmd/... $(addsuffix /...,$(wildcard ./plugins/*/cmd))

## test: every test, with the race detector
test: $(TOOLS)/sops
	$(GO) test -race -count=1 -timeout 15m ./...

## test-report-browser: the HTML report opened in headless Chromium (apt-get install -y chromium);
## `make test` runs the same test but skips the browser part when Chromium is absent
test-report-browser: $(TOOLS)/sops
	CERTFLEET_REQUIRE_BROWSER=1 $(GO) test -count=1 -run TestMigrateAdoptInventoryReport ./e2e/

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

tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc $(TOOLS)/staticcheck $(TOOLS)/sops

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
	rm -rf $(BIN) .tools
