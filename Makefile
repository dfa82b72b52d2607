# The two commands in the README: `make demo` and `make test`. Both build .venv from scratch
# on a fresh machine (nothing installed by hand counts). `make demo` installs only the service
# (the `server` extra); `make test` adds the test, benchmark, MCP and adapter extras.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-server
TEST_STAMP := $(VENV)/.installed-test
DEMO_EXTRAS := server
TEST_EXTRAS := server,test,bench,mcp,openai-agents,langgraph

.PHONY: demo test lint bench clean chromium screenshots

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[$(DEMO_EXTRAS)]'
	touch $(DEMO_STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[$(TEST_EXTRAS)]'
	touch $(TEST_STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/signoff demo

# The inbox's browser tests drive Debian's chromium package (never a downloaded browser
# build); installed only when missing (CI runs `make test` as root on a fresh machine).
# The audit report test also reads its PDF back as pictures with poppler's pdftoppm.
CHROMIUM := /usr/bin/chromium
PDFTOPPM := /usr/bin/pdftoppm
chromium:
	@test -x $(CHROMIUM) -a -x $(PDFTOPPM) || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium poppler-utils)

test: $(TEST_STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# The README's inbox pictures (docs/img/): the browser tests, saving their screenshots there.
# The test suite itself saves them to a temporary folder and never rewrites tracked files.
screenshots: $(TEST_STAMP) chromium
	SCREENSHOTS_DIR=docs/img $(BIN)/python -m pytest -q tests/inbox/test_browser.py tests/stepup/test_browser.py

bench: $(TEST_STAMP)
	for b in bench/[a-z]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .signoff
