# siprtc: the two set-up commands are `make lab` and `make test` (see README.md).
# Every target builds or installs what it needs: Go modules come through the module proxy.

GO       ?= go
GINKGO   := $(GO) run github.com/onsi/ginkgo/v2/ginkgo
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -X github.com/siprtc/siprtc/internal/version.Version=$(VERSION) \
            -X github.com/siprtc/siprtc/internal/version.Commit=$(COMMIT)
REPORTS  ?= reports/latest
# Packages whose code runs goroutines get the race detector in `make test`.
RACE_PKGS = $(shell $(GO) list ./... | grep -E '/(lab|gateway)(/|$$)')

.PHONY: all build deps test unit suites vet fmt-check bench lab pbx clean

all: build

deps:
	$(GO) mod download

build: deps
	@mkdir -p bin
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/siprtc ./cmd/siprtc

vet: deps
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# Unit tests (everything outside suites/), with -race on the concurrent packages.
unit: deps
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /suites/)
	$(GO) test -count=1 -race $(RACE_PKGS)

# Ginkgo suites, through the ginkgo CLI pinned in go.mod; JUnit and JSON land in $(REPORTS).
GINKGO_COMMON = -r --keep-going --junit-report=junit.xml --json-report=suites.json \
	--output-dir=$(REPORTS) $(if $(CI),--no-color) $(GINKGO_FLAGS)

suites: deps
	@mkdir -p $(REPORTS)
	$(GINKGO) $(GINKGO_COMMON) --race --timeout=15m ./suites

test: fmt-check vet unit suites

bench: deps
	$(GO) test -run='^$$' -bench=. -benchmem -count=$(or $(BENCH_COUNT),1) $(RACE_PKGS)

# The lab's main job on the embedded default PBX: runs the lab suites on the emulated network
# and writes the reports to $(REPORTS).
lab: build
	@mkdir -p $(REPORTS)
	$(GINKGO) $(GINKGO_COMMON) --timeout=30m ./suites

# The embedded PBX on loopback with the FreeSWITCH overlay, in the foreground.
pbx: build
	./bin/siprtc pbx --conf freeswitch/conf

clean:
	rm -rf bin reports/latest
