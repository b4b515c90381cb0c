# Every target runs inside the project's uv environment; `uv sync` first.
.PHONY: sync test lint wasm bench bench-full example

BENCH_ARGS = -n 0 --benchmark-only --benchmark-min-rounds=5 --benchmark-max-time=0.25 \
	--benchmark-warmup=on --benchmark-warmup-iterations=1 -q -p no:randomly

sync:
	uv sync

test:
	uv run pytest

lint:
	uv run ruff check .

# Rebuild every codec in wasm-src/ into chonkle/wasm/ with the ziglang package's compilers.
wasm:
	uv run python wasm-src/build.py

# The standard set (4 KiB, 256 KiB and 2 MiB chunks), a few minutes on 2 cores. Peers
# (numcodecs-wasm) come from the optional dependency group `peers`.
bench:
	uv run --group peers pytest benchmarks $(BENCH_ARGS) --benchmark-json=benchmarks/results/latest.json
	uv run --group peers python benchmarks/report.py benchmarks/results/latest.json

# Every size, 16 MiB chunks included.
bench-full:
	CHONKLE_BENCH_FULL=1 $(MAKE) bench

example:
	uv run python examples/make_example.py
