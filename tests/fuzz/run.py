"""Coverage-guided fuzzing of chonkle's parser and decoders with atheris (libFuzzer).

    uv run --group fuzz python tests/fuzz/run.py            # every target, 10 s each
    uv run --group fuzz python tests/fuzz/run.py zstd -s 600 # one target, ten minutes
    uv run --group fuzz python tests/fuzz/run.py --seed      # (re)write the seed corpus

Each target runs in its own process on a copy of its corpus (tests/fuzz/corpus/<target>), so a
bounded CI run never changes the repository; new inputs worth keeping are copied back with
--keep. A finding (crash, an exception other than ChonkleError, a hang past 10 s, more than
4 GiB of memory) fails the run and leaves the input in the printed artifact folder.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from targets import CORPUS, TARGETS, seeds  # noqa: E402


def write_seeds() -> None:
    for target, inputs in seeds().items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
        print(f"{target}: {len(inputs)} seeds")


def fuzz_one(target: str, seconds: int, keep: bool) -> bool:
    """Fuzz `target` in a child process; True when it found nothing."""
    with tempfile.TemporaryDirectory(prefix=f"chonkle-fuzz-{target}-") as scratch:
        corpus = Path(scratch) / "corpus"
        shutil.copytree(CORPUS / target, corpus)
        artifacts = Path(tempfile.mkdtemp(prefix=f"chonkle-fuzz-{target}-findings-"))
        command = [sys.executable, __file__, "--child", target, str(corpus),
                   f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=4096",
                   "-max_len=65536", f"-artifact_prefix={artifacts}/", "-print_final_stats=1"]
        result = subprocess.run(command, capture_output=True, text=True)
        stats = [line for line in result.stderr.splitlines() if line.startswith("stat::")]
        runs = next((line.split(":")[-1].strip() for line in stats
                     if "number_of_executed_units" in line), "?")
        if result.returncode != 0:
            print(f"{target}: FINDING after {runs} runs; input in {artifacts}\n"
                  f"{result.stderr[-3000:]}")
            return False
        shutil.rmtree(artifacts)
        if keep:
            for path in corpus.iterdir():
                shutil.copy(path, CORPUS / target / path.name)
        print(f"{target}: {runs} runs in {seconds} s, nothing found")
        return True


def child(target: str, argv: list[str]) -> None:
    import atheris

    with atheris.instrument_imports():
        import chonkle
        import chonkle.spec  # noqa: F401
    atheris.Setup([sys.argv[0], *argv], TARGETS[target])
    atheris.Fuzz()


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    parser.add_argument("-s", "--seconds", type=int, default=10)
    parser.add_argument("--seed", action="store_true", help="write the seed corpus")
    parser.add_argument("--keep", action="store_true", help="keep new corpus inputs")
    args = parser.parse_args()
    if args.seed:
        write_seeds()
        return 0
    names = [n if n in TARGETS else f"decode_{n}" for n in args.targets] or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    return 0 if all([fuzz_one(name, args.seconds, args.keep) for name in names]) else 1


if __name__ == "__main__":
    sys.exit(main())
