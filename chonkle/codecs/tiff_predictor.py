"""TIFF predictor 2 (horizontal differencing), the native reference for the Wasm codec."""

from __future__ import annotations

from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray

from chonkle.errors import CodecError, SpecError

BYTES_PER_SAMPLE = (1, 2, 4, 8)


class TiffPredictor2(Codec):
    """Each sample minus the same sample of the previous pixel in its row, wrapping.

    Rows are ``width * samples_per_pixel`` samples. Given an integer ndarray, it
    works on the array (``width`` defaults to the last axis) and returns one of the
    same dtype and shape. Given bytes (or a uint8 array while ``bytes_per_sample``
    is larger than 1), the samples are little-endian unsigned integers of
    ``bytes_per_sample`` bytes, as the Wasm ``tiff_predictor_2`` codec sees them.
    """

    codec_id = "tiff_predictor_2"

    def __init__(self, bytes_per_sample: int | None = None, width: int | None = None,
                 samples_per_pixel: int = 1) -> None:
        if bytes_per_sample is not None and bytes_per_sample not in BYTES_PER_SAMPLE:
            raise SpecError(f"bytes_per_sample must be 1, 2, 4 or 8, not {bytes_per_sample!r}")
        if width is not None and (not isinstance(width, int) or width < 1):
            raise SpecError(f"width must be a positive integer, not {width!r}")
        if not isinstance(samples_per_pixel, int) or samples_per_pixel < 1:
            raise SpecError(f"samples_per_pixel must be a positive integer, "
                            f"not {samples_per_pixel!r}")
        self.bytes_per_sample = bytes_per_sample
        self.width = width
        self.samples_per_pixel = samples_per_pixel

    def encode(self, buf: Any) -> np.ndarray:
        rows, restore = self._rows(buf)
        spp = self.samples_per_pixel
        out = rows.copy()
        np.subtract(rows[:, spp:], rows[:, :-spp], out=out[:, spp:])
        return restore(out)

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        rows, restore = self._rows(buf)
        spp = self.samples_per_pixel
        pixels = rows.reshape(rows.shape[0], rows.shape[1] // spp, spp)
        summed = np.cumsum(pixels, axis=1, dtype=rows.dtype).reshape(rows.shape)
        result = restore(summed)
        if out is not None:
            np.copyto(np.asarray(out), result)
            return out
        return result

    def _rows(self, buf: Any) -> tuple[np.ndarray, Any]:
        """View the input as (rows, samples) of unsigned ints, and a function to undo the view."""
        is_array = isinstance(buf, np.ndarray) and not (
            buf.dtype == np.uint8 and (self.bytes_per_sample or 1) > 1
        )
        if is_array:
            array = np.ascontiguousarray(buf)
            if array.dtype.kind not in "iub":
                raise CodecError(f"horizontal differencing needs integer samples, not "
                                 f"{array.dtype}")
            if self.bytes_per_sample not in (None, array.dtype.itemsize):
                raise CodecError(f"array of {array.dtype} has {array.dtype.itemsize}-byte "
                                 f"samples, but bytes_per_sample is {self.bytes_per_sample}")
            row_length = (self.width * self.samples_per_pixel if self.width
                          else (array.shape[-1] if array.ndim else 1))
            samples = array.reshape(-1).view(f"u{array.dtype.itemsize}")
            shape, dtype = array.shape, array.dtype

            def restore(result: np.ndarray) -> np.ndarray:
                return result.reshape(-1).view(dtype).reshape(shape)
        else:
            if self.bytes_per_sample is None or self.width is None:
                raise CodecError("bytes input needs bytes_per_sample and width in the "
                                 "configuration")
            raw = ensure_contiguous_ndarray(buf).reshape(-1).view(np.uint8)
            if raw.size % self.bytes_per_sample:
                raise CodecError(f"{raw.size} bytes is not a whole number of "
                                 f"{self.bytes_per_sample}-byte samples")
            samples = raw.view(f"<u{self.bytes_per_sample}")
            row_length = self.width * self.samples_per_pixel

            def restore(result: np.ndarray) -> np.ndarray:
                return result.reshape(-1).view(np.uint8)
        if row_length % self.samples_per_pixel or (samples.size and samples.size % row_length):
            raise CodecError(f"{samples.size} samples do not form whole rows of {row_length} "
                             f"samples (width {self.width or row_length // self.samples_per_pixel}"
                             f" x {self.samples_per_pixel} samples per pixel)")
        return samples.reshape(-1, row_length), restore

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "bytes_per_sample": self.bytes_per_sample,
                "width": self.width, "samples_per_pixel": self.samples_per_pixel}
