# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

JS := tests/js
JS_STAMP := $(JS)/node_modules/.installed-stamp

.PHONY: install bytecode run test test-fast bench lint clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Our packages' bytecode, written now (only what changed since the last time: ~0.05 s). Python
# reads .pyc files even where PYTHONDONTWRITEBYTECODE keeps it from writing them, and without
# them every node process compiles ~150 modules at start: ~0.3 s of a devnet's start-up, and
# again for each of the hundreds of nodes the end-to-end tests start.
PACKAGES := cybermiles_node consensus evm p2p rpc genesis

bytecode: $(STAMP)
	$(BIN)/python -m compileall -q $(PACKAGES)

# The clients the end-to-end tests drive (ethers.js, Hardhat 2 with the npm solc, Foundry's cast
# binary from its npm package), from the lockfile only: nothing else is downloaded, then or later.
$(JS_STAMP): $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

# Debian's Chromium, which the explorer's end-to-end test drives headless (playwright-core).
# Installed only when absent (CI runs as root); anything else stops `make test` with the reason.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "make: $(CHROMIUM) is missing and there is no apt-get: install Chromium there (the explorer e2e test needs it)" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
	  || { DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
	  || { echo "make: could not install Debian's chromium (the explorer e2e test needs $(CHROMIUM)): run 'apt-get install -y chromium' as root" >&2; exit 1; }
	@test -x $(CHROMIUM) || { echo "make: apt-get installed chromium but $(CHROMIUM) is not there" >&2; exit 1; }

chromium: $(CHROMIUM)

run: bytecode
	$(BIN)/cybermiles devnet --home devnet-home $(ARGS)

test: bytecode $(JS_STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

# The inner loop: everything but the end-to-end tests (no node processes).
test-fast: bytecode
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not e2e" tests

# Scripts that print numbers (docs/PERFORMANCE.md says what each means); no test asserts a speed.
# anvil and Hardhat are npm-installed into ~/.cache/cybermiles-bench when missing, or skipped.
bench: bytecode
	$(BIN)/python benchmarks/side_by_side.py
	$(BIN)/python benchmarks/bft_cluster.py --transfers 20000 --rate 2200
	$(BIN)/python benchmarks/bft_cluster.py --blocksync 1200
	$(BIN)/python benchmarks/latency_under_load.py
	$(BIN)/python benchmarks/devnet_ux.py
	$(BIN)/python benchmarks/transfers.py
	$(BIN)/python benchmarks/staking.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy cybermiles_node consensus evm p2p rpc genesis

clean:
	rm -rf $(VENV) build *.egg-info
