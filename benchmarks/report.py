"""Print medians and ratios to native from one pytest-benchmark JSON run.

Ratios compare measurements of the same run only: these machines are shared and
noisy, so numbers from different runs are not comparable.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def engine_of(bench: dict) -> str:
    params = bench.get("params") or {}
    return params.get("runtime") or params.get("engine") or "?"


def report(path: Path) -> str:
    data = json.loads(path.read_text())
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        groups[bench["group"]][engine_of(bench)] = bench["stats"]["median"]
    lines = [f"machine: {data['machine_info'].get('cpu', {}).get('brand_raw', '?')}, "
             f"Python {data['machine_info']['python_version']}", "",
             "| benchmark | engine | median | ratio to native |", "|---|---|---|---|"]
    for group in sorted(groups):
        medians = groups[group]
        native = medians.get("native")
        for engine in sorted(medians, key=lambda e: (e != "native", e)):
            median = medians[engine]
            ratio = f"{median / native:.2f}x" if native else "-"
            lines.append(f"| {group} | {engine} | {_format(median)} | {ratio} |")
    return "\n".join(lines)


def _format(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.3f} ms"


if __name__ == "__main__":
    print(report(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/latest.json")))
