# Everything a fresh clone needs: the end-to-end tools (kube-apiserver, etcd,
# kubectl, helm) are built from tools/go.mod and tools/helm/go.mod on first
# use and cached outside the clone (see tools/build.sh).
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# The image tag: the version without its leading v, as the chart pulls it
# (image.tag defaults to the chart's appVersion, 0.1.0 for git tag v0.1.0).
TAG     ?= $(VERSION:v%=%)

IMAGE   ?= kubereplicator/replicator

# The race detector needs cgo, which Go turns off when it finds no C
# compiler: the tests use it where cgo is on, and always under CI=true (where
# a missing compiler fails the run instead of testing less).
RACE    ?= $(shell if [ "$$CI" = true ] || [ "$$($(GO) env CGO_ENABLED)" = 1 ]; then echo -race; fi)

.PHONY: all build image image-oci test test-compat unit e2e vet fmt-check tools run clean manifests bench bench-scale bench-hostile bench-fleet soak

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/replicator .

## image: the container image for this machine's platform (needs a running Docker engine with BuildKit)
image:
	DOCKER_BUILDKIT=1 docker build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(TAG) .

## image-oci: the image for linux/amd64 and linux/arm64 as an OCI layout in bin/image, without Docker
image-oci:
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/linux-amd64/replicator .
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/linux-arm64/replicator .
	$(GO) run ./cmd/image -out bin/image -version $(TAG) -bin-amd64 bin/linux-amd64/replicator -bin-arm64 bin/linux-arm64/replicator

## manifests: render deploy/ from the chart with default values, and docs/chart-values.md from its values.yaml
manifests:
	"$$(tools/build.sh)/helm" template replicator ./chart --namespace replicator > deploy/replicator.yaml
	UPDATE_GOLDEN=1 REPLICATOR_TOOLS_BIN="$$(tools/build.sh)" $(GO) test -count=1 -run 'TestChartTemplate' ./e2e/
	UPDATE_GOLDEN=1 $(GO) test -count=1 -run TestChartValuesDoc .

## tools: build (or find in the cache) kube-apiserver, etcd, kubectl and helm
tools:
	@tools/build.sh

## test: everything, end-to-end included (what CI runs)
test: fmt-check vet
	@[ -n "$(RACE)" ] || echo "no C compiler (cgo is off): testing without the race detector, which CI always uses"
	REPLICATOR_TOOLS_BIN="$$(tools/build.sh)" $(GO) test $(RACE) -count=1 -timeout 30m ./...

## test-compat: the core end-to-end tests (pull, push, the five kinds, restart, leader election, the chart's RBAC) against kube-apiserver of each supported minor release, each built from tools/compat/<version> (not part of make test)
COMPAT_VERSIONS ?= v1.34.4 v1.35.4 v1.36.3 v1.37.2
COMPAT_TESTS    ?= ^(TestPull|TestPush|TestEveryKind|TestSteadyStateAndRestartCauseZeroWrites|TestLeaderElectionOneWriterAndFailover|TestChartInstallGrantsExactlyWhatTheReplicatorNeeds|TestChartWithAKindOffGrantsNothingForIt|TestChartRBACEscalation|TestCrossClusterPull)
test-compat:
	@for v in $(COMPAT_VERSIONS); do \
	  bin="$$(tools/compat/build.sh $$v)" || exit 1; \
	  echo "== kube-apiserver $$v"; \
	  CI=true REPLICATOR_EXPECT_KUBERNETES=$$v REPLICATOR_TOOLS_BIN="$$bin" $(GO) test $(RACE) -count=1 -timeout 30m -run '$(COMPAT_TESTS)' ./e2e/ || exit 1; \
	done

## unit: the tests that need no API server (end-to-end ones skip unless CI=true)
unit:
	$(GO) test $(RACE) -count=1 -timeout 30m ./...

## e2e: only the end-to-end suite
e2e:
	REPLICATOR_TOOLS_BIN="$$(tools/build.sh)" $(GO) test $(RACE) -count=1 -timeout 30m -v ./e2e/

vet:
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: fan-out, writes and memory figures (BENCH_FLAGS="-n 1000 -idle 30s")
bench:
	$(GO) run ./cmd/bench -bin-dir "$$(tools/build.sh)" -json bench.json $(BENCH_FLAGS)

## bench-scale: 1,000, 3,000 and 10,000 namespaces with ~5 KiB TLS data: fan-outs against the raw create time (three rounds without the client-side limit), RSS, live heap, restart (BENCH_SCALE_FLAGS="-scale 1000 -modes unlimited")
bench-scale:
	$(GO) run ./cmd/bench -bin-dir "$$(tools/build.sh)" -scale 1000,3000,10000 -json bench-scale.json $(BENCH_SCALE_FLAGS)

## bench-hostile: one tenant's 1,000 objects with annotations at and past every limit: the replicator's peak RSS and a legitimate pull's latency meanwhile and after a restart, with the chart's defaults and with the tenant allowed to push (BENCH_HOSTILE_FLAGS="-hostile 200 -hostile-kind secret")
bench-hostile:
	$(GO) run ./cmd/bench -bin-dir "$$(tools/build.sh)" -hostile 1000 -json bench-hostile.json $(BENCH_HOSTILE_FLAGS)

## bench-fleet: one hub, 10, 30 and 100 spokes pulling from it (a replicator each, one spoke API server shared): the hub's requests, watches and memory at rest and per renewal, before and with the spokes, per spoke by least squares, and a renewal's time to every spoke (BENCH_FLEET_FLAGS="-fleet 10 -fleet-idle 10s"); not part of make bench, whose one control plane it does not use
bench-fleet:
	$(GO) run ./cmd/bench -bin-dir "$$(tools/build.sh)" -fleet 10,30,100 -json bench-fleet.json $(BENCH_FLEET_FLAGS)

## run: the replicator against a local control plane it starts; against a real cluster only when named on the command line (make run KUBECONFIG=path ARGS="--dry-run")
run: build
	@REPLICATOR_TOOLS_BIN="$$(tools/build.sh)" REPLICATOR_RUN_KUBECONFIG="$(if $(filter command line,$(origin KUBECONFIG)),$(KUBECONFIG))" hack/run.sh $(ARGS)

clean:
	rm -rf bin .local

## soak: churn for SOAK_FLAGS="-duration 10m -rate 10"; prints RSS, goroutines, counters and a verdict
soak:
	$(GO) run ./cmd/soak -bin-dir "$$(tools/build.sh)" -json soak.json $(SOAK_FLAGS)
