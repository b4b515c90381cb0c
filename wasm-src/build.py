"""Build every codec in wasm-src/ to chonkle/wasm/<codec>.wasm with the ziglang package.

One folder per codec. A folder with <codec>.zig is a Zig codec: that file is the root
module and include/chonkle.zig is importable as "chonkle". Otherwise every .c file in the
folder is compiled together by the package's clang, with include/ on the include path.
Flags are fixed and paths are relative, so builds are byte-for-byte reproducible
(a test rebuilds each codec and compares it with the shipped file).

No global -msimd128: wasmer 1.1's compiler predates the final SIMD spec and rejects
opcodes clang's auto-vectorizer emits (i64x2.extend_low_i32x4_u, ...). Codecs opt in per
function with __attribute__((target("simd128"))), using operations both engines accept.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent
OUTPUT_DIR = SOURCE_ROOT.parent / "chonkle" / "wasm"
CFLAGS = [
    "--target=wasm32-wasi", "-mexec-model=reactor", "-O3", "-mbulk-memory",
    "-std=c11", "-Wall", "-Wextra", "-Werror", "-s",
]


ZIGFLAGS = ["-target", "wasm32-wasi", "-O", "ReleaseFast", "-fno-entry", "-rdynamic", "-fstrip"]


def codec_dirs(root: Path = SOURCE_ROOT) -> list[Path]:
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and (any(p.glob("*.c")) or (p / f"{p.name}.zig").is_file()))


def build(codec: Path, output_dir: Path, include: Path = SOURCE_ROOT / "include") -> Path:
    """Compile one codec folder into output_dir/<folder name>.wasm.

    The compiler writes into a temporary folder (Zig leaves an object file beside its
    output) and only the finished module is moved into place, so a failed build leaves
    the previous module untouched.
    """
    with tempfile.TemporaryDirectory() as scratch:
        built = _compile(codec, Path(scratch), include)
        target = output_dir / built.name
        shutil.move(str(built), str(target))
    return target


def _compile(codec: Path, output_dir: Path, include: Path) -> Path:
    output = (output_dir / f"{codec.name}.wasm").resolve()
    zig_root = codec / f"{codec.name}.zig"
    if zig_root.is_file():
        command = ["build-exe", *ZIGFLAGS, "--dep", "chonkle", f"-Mroot={zig_root.name}",
                   f"-Mchonkle={os.path.relpath(include / 'chonkle.zig', codec)}",
                   "--name", codec.name, f"-femit-bin={output}"]
    else:
        sources = sorted(p.name for p in codec.glob("*.c"))
        command = ["cc", *CFLAGS, f"-I{os.path.relpath(include, codec)}", *sources,
                   "-o", str(output)]
    subprocess.run([sys.executable, "-m", "ziglang", *command], cwd=codec, check=True)
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
