"""Build every codec in wasm-src/ to chonkle/wasm/<codec>.wasm with the ziglang package's clang.

One folder per codec; every .c file in it is compiled together with include/.
Flags are fixed and paths are relative, so builds are byte-for-byte reproducible
(a test rebuilds each codec and compares it with the shipped file).

No global -msimd128: wasmer 1.1's compiler predates the final SIMD spec and rejects
opcodes clang's auto-vectorizer emits (i64x2.extend_low_i32x4_u, ...). Codecs opt in per
function with __attribute__((target("simd128"))), using operations both engines accept.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent
OUTPUT_DIR = SOURCE_ROOT.parent / "chonkle" / "wasm"
CFLAGS = [
    "--target=wasm32-wasi", "-mexec-model=reactor", "-O3", "-mbulk-memory",
    "-std=c11", "-Wall", "-Wextra", "-Werror", "-Iinclude", "-s",
]


def codec_dirs() -> list[Path]:
    return sorted(p for p in SOURCE_ROOT.iterdir() if p.is_dir() and any(p.glob("*.c")))


def build(codec: Path, output_dir: Path) -> Path:
    output = output_dir / f"{codec.name}.wasm"
    sources = sorted(str(p.relative_to(SOURCE_ROOT)) for p in codec.glob("*.c"))
    command = [sys.executable, "-m", "ziglang", "cc", *CFLAGS, *sources, "-o", str(output)]
    subprocess.run(command, cwd=SOURCE_ROOT, check=True)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("codecs", nargs="*", help="codec folder names (default: all)")
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    dirs = [SOURCE_ROOT / name for name in args.codecs] if args.codecs else codec_dirs()
    for codec in dirs:
        print(f"built {build(codec, args.output_dir)}")


if __name__ == "__main__":
    main()
