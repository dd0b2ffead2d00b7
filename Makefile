# The two commands: `make demo` (the main job on the embedded default) and `make test`.
# Both set everything up first (scripts/setup.sh is idempotent).
VENV := .venv/bin
.PHONY: setup demo demo-full test test-quick lint protos clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/startctl demo

demo-full: setup
	$(VENV)/startctl demo --full

test: setup lint
	$(VENV)/python -m pytest

test-quick: setup
	$(VENV)/python -m pytest -m "not slow"

lint:
	$(VENV)/python scripts/gen_protos.py --check
	$(VENV)/ruff check .

protos:
	$(VENV)/python scripts/gen_protos.py

clean:
	rm -rf .venv .pytest_cache .ruff_cache build *.egg-info
