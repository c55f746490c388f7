# Switchboard: build, lint, test, fuzz, demo.
#
#   make deps    install the servers the tests run (Debian packages, as root
#                or with sudo), staticcheck and the Go modules; idempotent
#   make build   bin/switchboard
#   make lint    gofmt, go vet, staticcheck
#   make test    deps, lint, then every test with -race (end-to-end tests
#                start real Prosody/ngircd/InspIRCd/PostgreSQL on loopback)
#   make fuzz    every fuzz target for FUZZTIME each
#   make demo    run the gateway with real servers to try it by hand
#   make bench   benchmarks

SHELL := /bin/bash
GO ?= go
FUZZTIME ?= 30s
TESTFLAGS ?=
PKGS ?= ./...
STATICCHECK_VERSION ?= v0.8.2

GOBIN := $(shell $(GO) env GOBIN)
ifeq ($(GOBIN),)
GOBIN := $(shell $(GO) env GOPATH)/bin
endif
STATICCHECK := $(GOBIN)/staticcheck

.PHONY: all deps build lint test fuzz demo bench clean

all: build

deps:
	@GO=$(GO) STATICCHECK_VERSION=$(STATICCHECK_VERSION) ./scripts/install-deps.sh

build:
	$(GO) build -o bin/switchboard .

# All three checks run; any failure fails the target.
lint:
	@status=0; \
	echo "gofmt -l ."; files=$$(gofmt -l .); \
	if [ -n "$$files" ]; then echo "these files need gofmt:"; echo "$$files"; status=1; fi; \
	echo "$(GO) vet ./..."; $(GO) vet ./... || status=1; \
	echo "staticcheck ./..."; $(STATICCHECK) ./... || status=1; \
	exit $$status

# Lint first; a lint failure fails the target but the tests still run, so
# that the output always ends with go test's summary.
test: deps
	@lint=0; $(MAKE) --no-print-directory lint || lint=$$?; \
	if [ $$lint -ne 0 ]; then echo "*** lint FAILED (see above); running the tests anyway"; fi; \
	echo "$(GO) test -race -count=1 -timeout 25m $(TESTFLAGS) $(PKGS)"; \
	status=0; $(GO) test -race -count=1 -timeout 25m $(TESTFLAGS) $(PKGS) || status=$$?; \
	if [ $$status -eq 0 ]; then status=$$lint; fi; \
	exit $$status

fuzz:
	@set -e; \
	for pkg in $$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' $(PKGS)); do \
		for target in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz' || true); do \
			echo "== fuzz $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# Built rather than `go run`, so that Ctrl-C reaches the demo directly and
# it exits 0 after stopping everything it started.
demo: deps build
	$(GO) build -o bin/switchboard-demo ./tests/demo
	bin/switchboard-demo -bin bin/switchboard

bench:
	$(GO) test -run '^$$' -bench . $(PKGS)

clean:
	rm -rf bin
