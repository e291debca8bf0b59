# One cargo profile (release) for tests, examples and benches, so RocksDB's
# C++ is compiled once (without debug information: ~27 minutes for every
# target on 2 cores the first time).

CARGO ?= cargo

.PHONY: setup demo test bench corpus fuzz

setup:
	@sh scripts/setup.sh

## The main job: store a generated 256 MiB checkpoint twice, print dedup and compression.
demo: setup
	$(CARGO) run --release --example demo

## All tests (unit, integration, doc) plus a compile of every bench and example.
test: setup
	$(CARGO) test --release --all-targets
	$(CARGO) test --release --doc

## Criterion micro-benchmarks, built in the release profile like everything
## else (so RocksDB is not compiled again for a bench profile).
bench: setup
	$(CARGO) test --release --bench core -- --bench

## The real-weights corpus: fetch it, then store, restore and re-ingest it.
corpus: setup
	sh ../shared/corpus/fetch.sh
	$(CARGO) run --release --example corpus

## Peer comparison on the corpus: modelvault vs borg, restic and cp -r (installs borg/restic with apt-get).
## CORPUS_DIR=... to use another corpus (default: $MODELVAULT_CORPUS or ~/.cache/modelvault-corpus).
.PHONY: bench-peers
bench-peers:
	bash scripts/bench-peers.sh "$(CORPUS_DIR)"

## Deterministic synthetic checkpoints into SYNTH_DIR (examples/synth.rs): a 10-step
## bf16 + Adam training run (~110 MB per step), an fp32 base with 3 fine-tunes, and
## bf16 copies of the corpus's fp32 safetensors files when a corpus is present.
SYNTH_DIR ?= /tmp/modelvault-synth
.PHONY: synth bench-synth
synth: setup
	$(CARGO) run --release --example synth -- "$(SYNTH_DIR)"

## bench-peers (modelvault vs borg, restic, cp -r) on freshly generated synthetic checkpoints.
bench-synth: synth
	bash scripts/bench-peers.sh "$(SYNTH_DIR)"

## Build every fuzz target and run each for FUZZ_SECONDS (default 10): the 12
## pure-layer targets in fuzz/ (without RocksDB) and api_sequence in fuzz/store/
## (links the store: reuses the librocksdb.a of the release build when there is
## one, else compiles RocksDB into fuzz/store/target; FUZZ_STORE=0 skips it).
FUZZ_SECONDS ?= 10
fuzz: setup
	bash fuzz/run.sh $(FUZZ_SECONDS)
