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

## All tests (unit, integration, doc), a compile of every bench and example
## (first the examples integration tests run as child processes, as plain
## binaries: crash_child, readonly_writer and axum_blobs; `cargo test` builds
## examples only as test harnesses), then
## every example run on small inputs (examples-smoke).
test: setup
	$(CARGO) build --release --example crash_child --example readonly_writer --example axum_blobs
	$(CARGO) test --release --all-targets
	$(CARGO) test --release --doc
	$(MAKE) --no-print-directory examples-smoke

## Real S3 clients (boto3, aws CLI, rclone, MLflow) against `modelvault serve`:
## installs them (scripts/clients-setup.sh: a venv under target/, rclone from apt;
## needs network the first time), builds the binary, runs tests/clients. The binary
## is the one the integration tests use (`cargo test` builds it with the
## dev-dependencies' features, so `cargo build --bin` would compile the crate and
## some dependencies a second time), already there after `make test`.
## PYTEST_ARGS='-m "not slow"' skips the long ones; MODELVAULT_TEST_SERVER=moto
## runs the suite against moto's S3 server instead (checks the tests themselves).
CLIENTS_VENV ?= target/clients-venv
PYTEST_ARGS ?=
.PHONY: test-clients
test-clients:
	CLIENTS_VENV=$(CLIENTS_VENV) sh scripts/clients-setup.sh
	$(CARGO) test --release --no-run --test tests
	cd tests/clients && ../../$(CLIENTS_VENV)/bin/python -m pytest -v $(PYTEST_ARGS)

## Every example on small inputs, each checking its own results: registry and
## demo (16 MiB) as they are, registry_bench on 2,000 models, commit_bench for
## 0.2 s a case, synth writing a small synthetic corpus that corpus, cutter_eval
## and delta_eval then run on (never the real corpus: an empty --corpus, and a
## corpus path that does not exist), and range_read on a synthetic checkpoint
## put with the CLI (built by `cargo test`). crash_child runs only under
## tests/crash_kill.rs.
.PHONY: examples-smoke
examples-smoke:
	@set -e; d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; mkdir "$$d/empty"; \
	set -x; \
	$(CARGO) run --release --example registry; \
	$(CARGO) run --release --example demo -- 16 "$$d/demo"; \
	$(CARGO) run --release --example registry_bench -- 2000 200; \
	$(CARGO) run --release --example commit_bench -- 0.2 "$$d"; \
	$(CARGO) run --release --example synth -- "$$d/synth" --steps 3 --mb 4 --ft-mb 4 --corpus "$$d/empty"; \
	$(CARGO) run --release --example corpus -- "$$d/synth" "$$d/corpus-store"; \
	$(CARGO) run --release --example cutter_eval -- "$$d/no-corpus" "$$d/synth"; \
	$(CARGO) run --release --example delta_eval -- "$$d/no-corpus" "$$d/synth"; \
	target/release/modelvault --repo "$$d/rr" put --name m "$$d/synth/train-run/step-00"; \
	$(CARGO) run --release --example range_read -- "$$d/rr" m model.safetensors 65536 5

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

## The S3 endpoint against s3s-fs (the s3s project's reference server over a
## directory) on the corpus, one boto3 client, 3 alternating rounds: upload,
## download, stored bytes, peak RSS, 16 concurrent clients. Installs s3s-fs
## (cargo install, into target/s3s-fs) and boto3 (a venv in target/bench-venv).
.PHONY: bench-s3
bench-s3:
	$(CARGO) build --release --bin modelvault
	@test -x target/s3s-fs/bin/s3s-fs || $(CARGO) install s3s-fs@0.14.1 --features binary --locked --root target/s3s-fs
	@test -x target/bench-venv/bin/python || (python3 -m venv target/bench-venv && target/bench-venv/bin/pip install -q boto3)
	S3S_FS=target/s3s-fs/bin/s3s-fs target/bench-venv/bin/python scripts/bench-s3.py $(if $(CORPUS_DIR),--corpus "$(CORPUS_DIR)")

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

## The Python package (python/: PyO3 bindings built by maturin, the MLflow
## artifact-repository plugin) and its pytest suite, in a venv under target/.
## `pip install ./python` builds the extension in this workspace's target/
## with the release profile, so it reuses the RocksDB `make test` compiled
## (a few minutes: the crate and pyo3 only). pandas is there for the MLflow
## pyfunc test (mlflow-skinny does not pull it in).
PY_VENV ?= target/py-venv
PY_TEST_PKGS = maturin pytest numpy safetensors mlflow-skinny pandas
PY_TEST_MODS = maturin pytest numpy safetensors mlflow pandas
.PHONY: test-python
test-python:
	@test -x $(PY_VENV)/bin/python || python3 -m venv $(PY_VENV)
	@$(PY_VENV)/bin/python -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))" $(PY_TEST_MODS) \
		|| $(PY_VENV)/bin/pip install -q $(PY_TEST_PKGS)
	$(PY_VENV)/bin/pip install -q ./python
	MLFLOW_ALLOW_FILE_STORE=true $(PY_VENV)/bin/pytest -q python/tests
