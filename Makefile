# Shoal's two entry points (README.md): `make demo` and `make test`. Both install what they
# need, and only what is missing, so running them twice is fast.

SHELL        := /bin/bash
SWIFT        ?= swift
FUZZ_SECONDS ?= 300
# make test runs each fuzzer briefly so the harness stays honest; make fuzz runs it for real.
TEST_FUZZ_SECONDS ?= 30
FUZZ_BUILD   := .build-fuzz
SYSTEM_PACKAGES := libmnl-dev libpcap-dev iproute2 iputils-ping tcpdump ethtool python3 iperf3 valgrind dnsutils curl util-linux wrk openssl

.PHONY: deps build release demo test unit-test fuzz fuzz-build hotpath bench soak e2e clean

# Install the system packages that are missing (dpkg -s tells), with one apt-get update.
deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" -ne 0 ]; then echo "need root to install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product shoal

# The main demo: the swarm tutorial on a 3-node lab, typed with the real CLI, then torn down.
demo: release
	.build/release/shoal lab demo

unit-test: deps
	$(SWIFT) build --build-tests --explicit-target-dependency-import-check error
	$(SWIFT) test

test: unit-test
	$(MAKE) fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)
	$(MAKE) hotpath HOTPATH_FRAMES="300 2300"
	@left=$$(ip netns list | grep -E '^shoal-tmp-' || true); \
	labs=$$($(SWIFT) run --skip-build shoal lab ls | grep -vE 'persistent|^no labs' || true); \
	if [ -n "$$left$$labs" ]; then echo "tests left namespaces or labs behind:"; echo "$$left$$labs"; exit 1; fi
	@echo "make test: all passed"

# Touching the manifest makes SwiftPM rescan the parent package's sources: it does not notice
# files added to a path dependency otherwise.
fuzz-build: deps
	touch Fuzz/Package.swift
	$(SWIFT) build --package-path Fuzz --scratch-path $(FUZZ_BUILD) -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld

FUZZERS := WireFuzz OverlayFuzz IngressLBFuzz DNSFuzz RaftFuzz GossipFuzz APIFuzz

# Fuzz every parser of network bytes for FUZZ_SECONDS each; a crash leaves its input in
# fuzz-artifacts/ and fails the target. Rerun one input: $(FUZZ_BUILD)/release/WireFuzz FILE
# Leak detection is off: Swift stores multi-payload enum payloads with tag bits in the
# pointer's spare bits, which LeakSanitizer cannot follow, so it reports live objects as leaks.
fuzz: fuzz-build
	@mkdir -p fuzz-artifacts
	@for fuzzer in $(FUZZERS); do \
	  corpus=$(FUZZ_BUILD)/corpus/$$fuzzer; mkdir -p $$corpus; \
	  if [ $$fuzzer = DNSFuzz ]; then python3 Fuzz/seed-dns.py $$corpus >/dev/null; \
	  elif [ $$fuzzer = RaftFuzz ]; then python3 Fuzz/seed-raft.py $$corpus >/dev/null; \
	  elif [ $$fuzzer = GossipFuzz ]; then python3 Fuzz/seed-gossip.py $$corpus >/dev/null; \
	  elif [ $$fuzzer = APIFuzz ]; then python3 Fuzz/seed-api.py $$corpus >/dev/null; \
	  else python3 Fuzz/seed-from-pcap.py Tests/WireTests/Fixtures/kernel-vxlan.pcap $$corpus >/dev/null; fi; \
	  echo "== $$fuzzer for $(FUZZ_SECONDS) s"; \
	  SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 $(FUZZ_BUILD)/release/$$fuzzer -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -detect_leaks=0 \
	    -artifact_prefix=fuzz-artifacts/$$fuzzer- $$corpus > $(FUZZ_BUILD)/$$fuzzer.log 2>&1; \
	  status=$$?; grep -E "^Done|number_of_executed_units|new_units_added|ERROR|SUMMARY" $(FUZZ_BUILD)/$$fuzzer.log; \
	  if [ $$status -ne 0 ]; then tail -n 40 $(FUZZ_BUILD)/$$fuzzer.log; exit $$status; fi; \
	done

# Allocations and reference counting per frame on the overlay's hot path, counted by callgrind.
HOTPATH_FRAMES ?= 2000 12000
hotpath: deps
	bench/hotpath-allocations.sh $(HOTPATH_FRAMES)

# The long simulation runs (minutes): 10,000 seeds of the Raft simulator must all pass, and the
# deliberately broken commit rule must be caught in the first 3,000 (make test runs 120 + Figure 8);
# 1,000 seeds of the managers' cluster store under the same simulator (make test runs 100);
# then gossip at 1,000 members: 10 simulated minutes without a false dead declaration, every kill
# detected by everyone, entries reaching everyone, a partition healing to one state.
SOAK_SEEDS ?= 10000
STORE_SOAK_SEEDS ?= 1000
soak: deps
	$(SWIFT) build -c release --product shoal
	.build/release/shoal raft simulate --first 1 --count $(SOAK_SEEDS)
	.build/release/shoal raft simulate --machine store --first 1 --count $(STORE_SOAK_SEEDS)
	@if .build/release/shoal raft simulate --first 1 --count 3000 --unsafe-commit-earlier-terms > .build/broken-variant.log; then \
	  echo "the broken commit rule went unnoticed in 3000 seeds"; exit 1; fi; \
	grep -E "violation:" .build/broken-variant.log | head -3 | grep -q . || { echo "broken variant: no safety violation found"; exit 1; }; \
	grep -E "violation:" .build/broken-variant.log | head -3; echo "broken variant caught (full log: .build/broken-variant.log)"
	bench/gossip.sh

# The long end-to-end scenarios: the services suite with the data plane watched for 60 s with
# every manager down (make test watches it for 15 s); 1-minute certificates renewed for 3
# minutes (make test: 75 s).
e2e: deps
	$(SWIFT) build --build-tests
	SHOAL_MANAGERLESS_SECONDS=60 $(SWIFT) test --skip-build --filter ServiceCLIRootTests
	SHOAL_CERT_SECONDS=180 $(SWIFT) test --skip-build --filter SwarmCLIRootTests/certificatesAreRenewedBeforeTheyExpireAndTheSwarmStaysHealthy
	SHOAL_IDLE_SECONDS=1200 $(SWIFT) test --skip-build --filter VIPRootTests/aConnectionIdleLongerThanIPVSWouldKeepItStillWorks

# The benchmarks of bench/README.md (minutes; run on a quiet machine).
bench: hotpath
	bench/overlay.sh
	bench/raft.sh
	bench/cluster.sh
	bench/gossip.sh
	bench/scheduler.sh

clean:
	rm -rf .build $(FUZZ_BUILD) .build-bench fuzz-artifacts
