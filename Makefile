# Two entry points for a fresh machine (see README): `make run` and `make test`.
# Both create .venv when it is missing and (re)install when pyproject.toml changes.
# pip compiles bytecode at install on purpose: with PYTHONDONTWRITEBYTECODE set (as on our CI
# machines) nothing would ever be cached, and every `bench` start would recompile its imports.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell md5sum pyproject.toml | cut -c1-12)
export HF_HUB_OFFLINE := 1

.PHONY: run test lint setup

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/bench data pull shapes
	$(BIN)/bench run all

test: $(STAMP)
	$(BIN)/ruff check bench tests benchmarks
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

lint: $(STAMP)
	$(BIN)/ruff check bench tests benchmarks
