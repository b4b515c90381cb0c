"""Turn one pytest-benchmark JSON run into benchmarks/results/latest.md and latest.png.

Ratios compare medians measured in the same run only: these machines are shared and noisy,
so numbers from different runs are not comparable.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ["native", "wasmtime", "wasmer", "numcodecs-wasm"]
SIZE_ORDER = {"4 KiB": 0, "256 KiB": 1, "2 MiB": 2, "16 MiB": 3}
COLD_START = "first decode in a fresh process"
LIMITS = "limits: "


def engine_of(bench: dict) -> str:
    return (bench.get("extra_info") or {}).get("engine") or (bench.get("params") or {}).get(
        "engine", "?")


def load(path: Path) -> tuple[dict, dict[str, dict[str, float]]]:
    data = json.loads(path.read_text())
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        groups[bench["group"]][engine_of(bench)] = bench["stats"]["median"]
    return data, groups


def speedups(data: dict) -> dict[str, dict[str, float]]:
    """Per group and engine, the speedup a benchmark measured itself by running 1 and 2
    workers in turn (``extra_info["speedup"]``)."""
    found: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        speedup = (bench.get("extra_info") or {}).get("speedup")
        if isinstance(speedup, (int, float)):
            found[bench["group"]][engine_of(bench)] = float(speedup)
    return found


def sort_key(group: str) -> tuple:
    size = re.search(r", ([0-9]+ [KM]iB)$", group)
    return (group.startswith(("pipeline", "64 ", "fixed")), re.sub(r", [0-9]+ [KM]iB$", "", group),
            SIZE_ORDER.get(size.group(1), 9) if size else 9, group)


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def machine(data: dict) -> str:
    info = data["machine_info"]
    engines = ", ".join(f"{k} {v}" for k, v in sorted(info.get("engines", {}).items()))
    packages = ", ".join(f"{k} {v}" for k, v in sorted(info.get("packages", {}).items()))
    return (f"Measured {data['datetime'][:16].replace('T', ' ')} UTC on "
            f"{info.get('cpu', {}).get('brand_raw', '?')}, {info.get('cores', '?')} cores, "
            f"{info['python_implementation']} {info['python_version']}; engines: {engines}; "
            f"{packages}.")


def pivot(groups: dict[str, dict[str, float]]) -> list[str]:
    present = [c for c in COLUMNS if any(c in g for g in groups.values())]
    lines = ["| benchmark | " + " | ".join(present) + " |", "|---" * (len(present) + 1) + "|"]
    for group in sorted((g for g in groups if not g.startswith((COLD_START, LIMITS))),
                        key=sort_key):
        medians = groups[group]
        native = medians.get("native")
        cells = []
        for column in present:
            if column not in medians:
                cells.append("")
            elif column == "native" or not native:
                cells.append(fmt(medians[column]))
            else:
                cells.append(f"{fmt(medians[column])} ({medians[column] / native:.2f}x)")
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return lines


def long_table(groups: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| benchmark | engine | median | ratio to native |", "|---|---|---|---|"]
    for group in sorted(groups, key=sort_key):
        medians = groups[group]
        native = medians.get("native")
        for engine in sorted(medians, key=lambda e: (e != "native", e)):
            ratio = f"{medians[engine] / native:.2f}x" if native else "-"
            lines.append(f"| {group} | {engine} | {fmt(medians[engine])} | {ratio} |")
    return lines


def limits_table(groups: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| benchmark | without time checks | with time checks | cost |", "|---|---|---|---|"]
    for group in sorted(groups):
        without = groups[group].get("without time checks")
        with_checks = groups[group].get("with time checks")
        if without and with_checks:
            lines.append(f"| {group.removeprefix(LIMITS)} | {fmt(without)} | {fmt(with_checks)} "
                         f"| {100 * (with_checks / without - 1):+.0f}% |")
    return lines


WORKERS = re.compile(r"^(.*), ([0-9]+) workers?(?:\(s\))?$")


def scaling_table(groups: dict[str, dict[str, float]],
                  measured: dict[str, dict[str, float]] | None = None) -> list[str]:
    """How much faster 2 workers are than 1, per engine: the goal of the parallel readers,
    which a ratio to native does not show. Where the 2-worker benchmark measured the speedup
    itself (`measured`, see ``speedups``), that is shown; else the ratio of the medians."""
    by_workers: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    interleaved: dict[str, dict[str, float]] = {}
    for group, medians in groups.items():
        match = WORKERS.match(group)
        if match:
            by_workers[match.group(1)][int(match.group(2))] = medians
            if int(match.group(2)) == 2 and measured and group in measured:
                interleaved[match.group(1)] = measured[group]
    present = [c for c in COLUMNS if any(c in m for w in by_workers.values()
                                         for m in w.values())]
    lines = ["| 2 workers versus 1 | " + " | ".join(present) + " |",
             "|---" * (len(present) + 1) + "|"]
    for name in sorted(by_workers):
        one, two = by_workers[name].get(1, {}), by_workers[name].get(2, {})
        ratios = {c: one[c] / two[c] for c in present if c in one and c in two}
        ratios.update(interleaved.get(name, {}))
        cells = [f"{ratios[c]:.2f}x faster" if c in ratios else "" for c in present]
        if any(cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines if len(lines) > 2 else []


def chart(groups: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 7), sharey=False)
    for axis, direction in zip(axes, ("decode", "encode"), strict=True):
        rows = [g for g in sorted(groups, key=sort_key)
                if f" {direction}, " in g and not g.startswith(("pipeline", "64 ", LIMITS))
                and "native" in groups[g] and len(groups[g]) > 1]
        engines = [e for e in COLUMNS[1:] if any(e in groups[g] for g in rows)]
        if not rows:
            axis.set_axis_off()
            axis.set_title(f"{direction}: no measurements")
            continue
        height = 0.8 / max(len(engines), 1)
        for k, engine in enumerate(engines):
            ratios = [groups[g][engine] / groups[g]["native"] if engine in groups[g] else None
                      for g in rows]
            ratios = [r if r is not None else float("nan") for r in ratios]
            axis.barh([i + k * height for i in range(len(rows))], ratios, height=height,
                      label=engine)
        axis.axvline(1.0, color="black", linewidth=1)
        axis.set_xscale("log")
        ticks = [0.25, 0.5, 1, 2, 4, 8, 16]
        axis.set_xticks(ticks, [f"{t:g}x" for t in ticks])
        axis.set_xlim(0.15, 20)
        axis.set_yticks([i + height * (len(engines) - 1) / 2 for i in range(len(rows))])
        axis.set_yticklabels([g.replace(f" {direction},", ",") for g in rows], fontsize=7)
        axis.invert_yaxis()
        axis.set_xlabel("time relative to native, log scale (left of 1x: faster than native)")
        axis.set_title(f"{direction}")
        axis.legend(fontsize=8)
    fig.suptitle("chonkle Wasm codecs versus native implementations (medians, one run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "latest.json"
    data, groups = load(source)
    cold = {g: m for g, m in groups.items() if g.startswith(COLD_START)}
    lines = ["# chonkle benchmarks", "", machine(data), "",
             "Each cell: median time, and in brackets its ratio to native (below 1.00x: faster "
             "than native). Data: a smooth uint16 raster with sensor noise (float32 for "
             "tiff_predictor_3), rows of 1024 samples; 2 MiB is 1024x1024.", "",
             *pivot(groups), ""]
    if cold:
        lines += ["First decode in a fresh process (interpreter start, imports, pipeline, one "
                  "decode of the zstd module):", "", *long_table(cold), ""]
    scaling = scaling_table(groups, speedups(data))
    if scaling:
        lines += ["The same work on 2 workers versus 1 (threads for native and wasmtime, worker "
                  "processes for wasmer): the median ratio over 9 runs of each in turn, which "
                  "machine drift disturbs less than the ratio of the rows above:", "",
                  *scaling, ""]
    limited = {g: m for g, m in groups.items() if g.startswith(LIMITS)}
    if limited:
        lines += ["What the time limit costs on wasmtime (a shipped codec compiled without and "
                  "with interruption checks):", "", *limits_table(limited), ""]
    lines += ["![chart](latest.png)", "", "## Every measurement", "", *long_table(groups), ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text("\n".join(lines))
    chart(groups, RESULTS / "latest.png")
    summary = lines[2:lines.index("![chart](latest.png)")]
    update_readme(summary)
    print("\n".join(summary))


def update_readme(summary: list[str]) -> None:
    """Replace the README's results block (between the markers) with this run's tables."""
    readme = RESULTS.parent.parent / "README.md"
    start, end = "<!-- benchmark results: start -->", "<!-- benchmark results: end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        return
    block = "\n".join([start, *summary, "![benchmark chart](benchmarks/results/latest.png)", end])
    head, rest = text.split(start, 1)
    readme.write_text(head + block + rest.split(end, 1)[1])


if __name__ == "__main__":
    main()
