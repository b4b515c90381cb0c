# Every target runs inside the project's uv environment; `uv sync` first.
.PHONY: sync test lint wasm bench example

sync:
	uv sync

test:
	uv run pytest

lint:
	uv run ruff check .

# Rebuild every codec in wasm-src/ into chonkle/wasm/ with the ziglang package's clang.
wasm:
	uv run python wasm-src/build.py

bench:
	uv run pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results/latest.json -q
	uv run python benchmarks/report.py benchmarks/results/latest.json | tee benchmarks/results/latest.md

example:
	uv run python examples/make_example.py
