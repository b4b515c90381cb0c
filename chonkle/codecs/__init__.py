"""chonkle's native codecs, registered with numcodecs under their pipeline names.

They are also declared in the ``numcodecs.codecs`` entry-point group, so
``numcodecs.get_codec({"id": "bytes", ...})`` finds them without importing chonkle.
"""

import numcodecs.checksum32
from numcodecs.registry import codec_registry, register_codec

from chonkle.codecs.bytes_codec import ZARR_DATA_TYPES, Bytes
from chonkle.codecs.crc32c_codec import Crc32c
from chonkle.codecs.tiff_predictor import TiffPredictor2, TiffPredictor3

for _codec in (Bytes, TiffPredictor2, TiffPredictor3):
    if _codec.codec_id not in codec_registry:
        register_codec(_codec)
if not hasattr(numcodecs.checksum32, "CRC32C"):  # numcodecs < 0.14 has none
    register_codec(Crc32c)

__all__ = ["ZARR_DATA_TYPES", "Bytes", "Crc32c", "TiffPredictor2", "TiffPredictor3"]
