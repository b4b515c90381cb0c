"""Build the codecs chonkle ships: every codec folder in wasm-src/ to chonkle/wasm/<codec>.wasm.

The compiling itself is chonkle.codec_build, the same code behind `chonkle build-codec`.
Builds are byte-for-byte reproducible; a test rebuilds each codec and compares it with
the shipped file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chonkle.codec_build import build_codec, is_codec_dir

SOURCE_ROOT = Path(__file__).resolve().parent
OUTPUT_DIR = SOURCE_ROOT.parent / "chonkle" / "wasm"
INCLUDE = SOURCE_ROOT / "include"


def codec_dirs(root: Path = SOURCE_ROOT) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.name != "include" and is_codec_dir(p))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("codecs", nargs="*", help="codec folder names (default: all)")
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args()
    dirs = [SOURCE_ROOT / name for name in args.codecs] if args.codecs else codec_dirs()
    for codec in dirs:
        output = build_codec(codec, args.output_dir / f"{codec.name}.wasm", INCLUDE)
        print(f"built {output}")


if __name__ == "__main__":
    main()
