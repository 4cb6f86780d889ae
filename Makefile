# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

JS := tests/js
JS_STAMP := $(JS)/node_modules/.installed-stamp

.PHONY: install run test test-fast bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The clients the end-to-end tests drive (ethers.js, Hardhat 2 with the npm solc, Foundry's cast
# binary from its npm package), from the lockfile only: nothing else is downloaded, then or later.
$(JS_STAMP): $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

run: $(STAMP)
	$(BIN)/cybermiles devnet --home devnet-home $(ARGS)

test: $(STAMP) $(JS_STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

# The inner loop: everything but the end-to-end tests (no node processes).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not e2e" tests

bench: $(STAMP)
	$(BIN)/python benchmarks/transfers.py
	$(BIN)/python benchmarks/bft_cluster.py
	$(BIN)/python benchmarks/staking.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy cybermiles_node consensus evm p2p rpc genesis

clean:
	rm -rf $(VENV) build *.egg-info
