"""Regenerate the example chunk: a 256x256 uint16 raster tile stored as a COG tile is.

The tile is synthetic (a smooth, band-like surface with sensor noise) so the repo
ships no third-party data. Pipeline: bytes -> tiff_predictor_2 (Wasm) -> zlib.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import chonkle

HERE = Path(__file__).resolve().parent
CHUNK = HERE / "cog_tile.bin"
PIPELINE = {
    "codecs": [
        {"name": "bytes", "type": "numcodecs",
         "configuration": {"endian": "little", "data_type": "uint16", "shape": [256, 256]}},
        # No "uri": the codec shipped inside chonkle, so the example works wherever it is
        # copied, and under CHONKLE_REQUIRE_DIGEST=1.
        {"name": "tiff_predictor_2", "type": "wasm",
         "configuration": {"bytes_per_sample": 2, "width": 256}},
        {"name": "zlib", "type": "numcodecs", "configuration": {"level": 9}},
    ]
}


def example_tile() -> np.ndarray:
    rng = np.random.default_rng(2026)
    y, x = np.indices((256, 256))
    surface = 2400 + 900 * np.sin(x / 41.0) * np.cos(y / 29.0) + 3.5 * x + 2.0 * y
    return np.clip(surface + rng.normal(0, 15, surface.shape), 0, 65535).astype(np.uint16)


def main() -> None:
    sidecar = CHUNK.with_name(CHUNK.name + ".json")
    sidecar.write_text(json.dumps(PIPELINE, indent=2) + "\n")
    CHUNK.write_bytes(chonkle.encode(example_tile(), sidecar))
    print(f"wrote {CHUNK} and {sidecar}")


if __name__ == "__main__":
    main()
