"""The benchmark report (benchmarks/report.py) on a small synthetic run: tables, README, chart."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parent.parent / "benchmarks" / "report.py"


@pytest.fixture
def report():
    spec = importlib.util.spec_from_file_location("bench_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_json(tmp_path: Path) -> Path:
    def bench(group: str, engine: str, median: float, extra: dict | None = None) -> dict:
        return {"group": group, "params": {"engine": engine}, "extra_info": extra or {},
                "stats": {"median": median}}

    data = {"datetime": "2026-11-24T03:00:00", "benchmarks": [
        bench("zstd decode, 2 MiB", "native", 0.002),
        bench("zstd decode, 2 MiB", "wasmtime", 0.004),
        bench("zstd decode, 2 MiB", "?", 0.009, {"engine": "numcodecs-wasm"}),
        bench("zstd decode, 4 KiB", "native", 20e-6),
        bench("zstd decode, 4 KiB", "wasmtime", 10e-6),
        bench("first decode in a fresh process (zstd module)", "native", 0.2),
        bench("first decode in a fresh process (zstd module)", "wasmtime, compiling", 0.3),
    ], "machine_info": {"cpu": {"brand_raw": "Test CPU"}, "cores": 2,
                        "python_implementation": "CPython", "python_version": "3.10.13",
                        "engines": {"wasmtime": "50.0.1"}, "packages": {"numpy": "2.2.6"}}}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return path


def test_tables_rank_sizes_and_show_ratios(report, tmp_path) -> None:
    data, groups = report.load(run_json(tmp_path))
    table = report.pivot(groups)
    assert table[0] == "| benchmark | native | wasmtime | numcodecs-wasm |"
    assert table[2] == "| zstd decode, 4 KiB | 20.0 us | 10.0 us (0.50x) |  |"
    assert table[3] == "| zstd decode, 2 MiB | 2.00 ms | 4.00 ms (2.00x) | 9.00 ms (4.50x) |"
    assert not any("fresh process" in line for line in table)
    assert "Test CPU, 2 cores, CPython 3.10.13; engines: wasmtime 50.0.1" in report.machine(data)
    long = report.long_table(groups)
    assert ("| first decode in a fresh process (zstd module) | wasmtime, compiling | 300.00 ms "
            "| 1.50x |") in long


def test_chart_and_readme_block(report, tmp_path, monkeypatch) -> None:
    _, groups = report.load(run_json(tmp_path))
    report.chart(groups, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- benchmark results: start -->\nold\n"
                      "<!-- benchmark results: end -->\noutro\n")
    monkeypatch.setattr(report, "RESULTS", tmp_path / "benchmarks" / "results")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    report.update_readme(["| new | table |"])
    text = readme.read_text()
    assert "old" not in text and "| new | table |" in text
    assert text.startswith("intro\n") and text.endswith("outro\n")


def test_scaling_table_divides_one_worker_by_two(report) -> None:
    groups = {
        "64 tiles, decode_many, 1 worker(s)": {"native": 0.050, "wasmtime": 0.040},
        "64 tiles, decode_many, 2 worker(s)": {"native": 0.025, "wasmtime": 0.032},
        "read a COG, 1 worker": {"wasmer": 0.3},
        "read a COG, 2 workers": {"wasmer": 0.2},
        "zstd decode, 2 MiB": {"native": 0.002},
    }
    assert report.scaling_table(groups) == [
        "| 2 workers versus 1 | native | wasmtime | wasmer |", "|---|---|---|---|",
        "| 64 tiles, decode_many | 2.00x faster | 1.25x faster |  |",
        "| read a COG |  |  | 1.50x faster |"]
    assert report.scaling_table({"zstd decode, 2 MiB": {"native": 0.002}}) == []


def test_a_speedup_measured_in_turn_is_preferred(report) -> None:
    groups = {"tiles, 1 worker(s)": {"wasmtime": 0.040, "wasmer": 0.050},
              "tiles, 2 worker(s)": {"wasmtime": 0.032, "wasmer": 0.025}}
    data = {"benchmarks": [
        {"group": "tiles, 2 worker(s)", "params": {"engine": "wasmtime"},
         "extra_info": {"speedup": 1.5}, "stats": {"median": 0.032}},
        {"group": "tiles, 2 worker(s)", "params": {"engine": "wasmer"}, "extra_info": {},
         "stats": {"median": 0.025}}]}
    assert report.speedups(data) == {"tiles, 2 worker(s)": {"wasmtime": 1.5}}
    assert report.scaling_table(groups, report.speedups(data))[2] == (
        "| tiles | 1.50x faster | 2.00x faster |")
