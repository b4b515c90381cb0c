"""chonkle's native codecs, registered with numcodecs under their pipeline names.

They are also declared in the ``numcodecs.codecs`` entry-point group, so
``numcodecs.get_codec({"id": "bytes", ...})`` finds them without importing chonkle.
"""

from numcodecs.registry import codec_registry, register_codec

from chonkle.codecs.bytes_codec import ZARR_DATA_TYPES, Bytes
from chonkle.codecs.tiff_predictor import TiffPredictor2, TiffPredictor3

for _codec in (Bytes, TiffPredictor2, TiffPredictor3):
    if _codec.codec_id not in codec_registry:
        register_codec(_codec)

__all__ = ["ZARR_DATA_TYPES", "Bytes", "TiffPredictor2", "TiffPredictor3"]
