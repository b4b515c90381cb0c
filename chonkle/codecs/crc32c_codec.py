"""The ``crc32c`` checksum codec (Zarr v3's ``crc32c``: a 4-byte little-endian CRC-32C after
the data), for numcodecs versions that have none (0.13 and older, as on CPython 3.10).

Zarr-python 3 puts it in the index codecs of every sharded array, so without it such arrays
could not be read there. Registered only where numcodecs lacks its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray

from chonkle.errors import CodecError


class Crc32c(Codec):
    codec_id = "crc32c"

    def encode(self, buf: Any) -> np.ndarray:
        import google_crc32c

        data = ensure_contiguous_ndarray(buf).reshape(-1).view(np.uint8)
        checksum = google_crc32c.value(data.tobytes()).to_bytes(4, "little")
        return np.concatenate([data, np.frombuffer(checksum, np.uint8)])

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        import google_crc32c

        data = ensure_contiguous_ndarray(buf).reshape(-1).view(np.uint8)
        if data.size < 4:
            raise CodecError(f"{data.size} bytes cannot hold a CRC-32C checksum")
        payload, stored = data[:-4], int.from_bytes(data[-4:].tobytes(), "little")
        if google_crc32c.value(payload.tobytes()) != stored:
            raise CodecError("the CRC-32C checksum does not match the data")
        if out is not None:
            np.copyto(np.asarray(out).reshape(-1).view(np.uint8), payload)
            return out
        return payload.copy()

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id}
