"""TIFF predictors 2 and 3, the native references for the Wasm codecs of the same names.

Both follow libtiff: predictor 2 (horizontal differencing) subtracts from each sample the same
sample of the previous pixel in its row, wrapping; predictor 3 (floating point, TIFF Technical
Note 3) regroups the bytes of each row by significance, most significant first, and
differences that byte string with a distance of ``samples_per_pixel`` bytes.

Configuration, shared with the Wasm codecs: ``bytes_per_sample``, ``width`` (pixels per row),
``samples_per_pixel`` (default 1: interleaved samples, PlanarConfiguration 1; separate planes
are rows of one sample per pixel) and ``endian`` (``"little"``, the default, or ``"big"``), the
byte order of the samples when the codec is given bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray

from chonkle.errors import CodecError, SpecError

ENDIANS = {"little": "<", "big": ">"}
MAX_WIDTH = 1 << 30
MAX_SAMPLES_PER_PIXEL = 1 << 16

Restore = Callable[[np.ndarray], np.ndarray]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class _TiffPredictor(Codec):
    codec_id = ""
    BYTES_PER_SAMPLE: tuple[int, ...] = ()
    SAMPLE_KINDS = ""  # numpy kinds of the arrays the predictor takes as they are
    SAMPLE_KIND_NAMES = ""

    def __init__(self, bytes_per_sample: int | None = None, width: int | None = None,
                 samples_per_pixel: int = 1, endian: str = "little") -> None:
        if bytes_per_sample is not None and not (
            _is_int(bytes_per_sample) and bytes_per_sample in self.BYTES_PER_SAMPLE
        ):
            allowed = ", ".join(map(str, self.BYTES_PER_SAMPLE[:-1]))
            raise SpecError(f"bytes_per_sample must be {allowed} or {self.BYTES_PER_SAMPLE[-1]}, "
                            f"not {bytes_per_sample!r}")
        if width is not None and not (_is_int(width) and 1 <= width <= MAX_WIDTH):
            raise SpecError(f"width must be an integer from 1 to {MAX_WIDTH}, not {width!r}")
        if not (_is_int(samples_per_pixel) and 1 <= samples_per_pixel <= MAX_SAMPLES_PER_PIXEL):
            raise SpecError(f"samples_per_pixel must be an integer from 1 to "
                            f"{MAX_SAMPLES_PER_PIXEL}, not {samples_per_pixel!r}")
        if endian not in ENDIANS:
            raise SpecError(f"endian must be 'little' or 'big', not {endian!r}")
        self.bytes_per_sample = None if bytes_per_sample is None else int(bytes_per_sample)
        self.width = None if width is None else int(width)
        self.samples_per_pixel = int(samples_per_pixel)
        self.endian = endian

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "bytes_per_sample": self.bytes_per_sample,
                "width": self.width, "samples_per_pixel": self.samples_per_pixel,
                "endian": self.endian}

    def _layout(self, buf: Any) -> tuple[np.ndarray, int, int, bool, Restore]:
        """The input as raw bytes (rows, row bytes), the bytes per sample, the samples per row,
        whether samples are big-endian, and a function giving the result the input's form.

        A typed ndarray (other than uint8 while bytes_per_sample is larger than 1) is taken as
        it is: its samples, in its own byte order. Anything else is bytes."""
        bps_config = self.bytes_per_sample or 1
        if isinstance(buf, np.ndarray) and not (buf.dtype == np.uint8 and bps_config > 1):
            array = np.ascontiguousarray(buf)
            if array.dtype.kind not in self.SAMPLE_KINDS:
                raise CodecError(f"{self.codec_id} needs {self.SAMPLE_KIND_NAMES} samples, not "
                                 f"{array.dtype}")
            bps = array.dtype.itemsize
            if bps not in self.BYTES_PER_SAMPLE or self.bytes_per_sample not in (None, bps):
                raise CodecError(f"array of {array.dtype} has {bps}-byte samples, but "
                                 f"bytes_per_sample is {self.bytes_per_sample}")
            row_samples = (self.width * self.samples_per_pixel if self.width
                           else (array.shape[-1] if array.ndim else 1))
            order = array.dtype.byteorder
            big = order == ">" or (order == "=" and sys.byteorder == "big")
            raw = array.reshape(-1).view(np.uint8)
            shape, dtype = array.shape, array.dtype

            def restore(result: np.ndarray) -> np.ndarray:
                return result.reshape(-1).view(dtype).reshape(shape)
        else:
            if self.bytes_per_sample is None or self.width is None:
                raise CodecError("bytes input needs bytes_per_sample and width in the "
                                 "configuration")
            raw = ensure_contiguous_ndarray(buf).reshape(-1).view(np.uint8)
            bps, big = self.bytes_per_sample, self.endian == "big"
            row_samples = self.width * self.samples_per_pixel

            def restore(result: np.ndarray) -> np.ndarray:
                return result.reshape(-1)
        if raw.size % bps:
            raise CodecError(f"{raw.size} bytes is not a whole number of {bps}-byte samples")
        samples = raw.size // bps
        if row_samples % self.samples_per_pixel or (samples and samples % row_samples):
            raise CodecError(f"{samples} samples do not form whole rows of {row_samples} "
                             f"samples (width {self.width or row_samples // self.samples_per_pixel}"
                             f" x {self.samples_per_pixel} samples per pixel)")
        return raw.reshape(-1, row_samples * bps), bps, row_samples, big, restore

    def _finish(self, result: np.ndarray, out: Any) -> Any:
        if out is not None:
            target = ensure_contiguous_ndarray(out).reshape(-1).view(np.uint8)
            source = result.reshape(-1).view(np.uint8)
            if source.size != target.size:
                raise CodecError(f"decoded {source.size} bytes, but out= holds {target.size}")
            target[...] = source
            return out
        return result


class TiffPredictor2(_TiffPredictor):
    """Horizontal differencing: each sample minus the same sample of the previous pixel, wrapping.

    Rows are ``width * samples_per_pixel`` samples. Given an integer ndarray, it works on the
    array's values (``width`` defaults to the last axis) and returns one of the same dtype and
    shape. Given bytes (or a uint8 array while ``bytes_per_sample`` is larger than 1), the
    samples are unsigned integers of ``bytes_per_sample`` bytes in ``endian`` byte order, as
    the Wasm ``tiff_predictor_2`` codec sees them.
    """

    codec_id = "tiff_predictor_2"
    BYTES_PER_SAMPLE = (1, 2, 4, 8)
    SAMPLE_KINDS = "iub"
    SAMPLE_KIND_NAMES = "integer"

    def encode(self, buf: Any) -> np.ndarray:
        rows, spp, restore, stored = self._samples(buf)
        out = rows.copy()
        np.subtract(rows[:, spp:], rows[:, :-spp], out=out[:, spp:])
        return restore(self._store(out, stored))

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        rows, spp, restore, stored = self._samples(buf)
        pixels = rows.reshape(rows.shape[0], rows.shape[1] // spp, spp)
        summed = np.cumsum(pixels, axis=1, dtype=rows.dtype).reshape(rows.shape)
        return self._finish(restore(self._store(summed, stored)), out)

    def _samples(self, buf: Any) -> tuple[np.ndarray, int, Restore, np.dtype]:
        """(rows, samples) of native unsigned ints; the stored dtype to write them back as."""
        raw, bps, row_samples, big, restore = self._layout(buf)
        stored = np.dtype(f"{'>' if big else '<'}u{bps}")
        rows = raw.reshape(-1).view(stored).astype(stored.newbyteorder("="), copy=False)
        return rows.reshape(-1, row_samples), self.samples_per_pixel, restore, stored

    @staticmethod
    def _store(values: np.ndarray, stored: np.dtype) -> np.ndarray:
        return values.astype(stored, copy=False).reshape(-1).view(np.uint8)


class TiffPredictor3(_TiffPredictor):
    """The floating-point predictor, byte for byte as libtiff (and imagecodecs) do it.

    Per row of ``width * samples_per_pixel`` samples, byte plane p holds byte p of every
    sample counting from the most significant; the planes are concatenated and differenced
    with a distance of ``samples_per_pixel`` bytes. The encoded bytes are the same whatever the
    samples' byte order (TIFF stores them so in II and MM files); ``endian`` is the byte order
    of the decoded samples when the codec is given bytes. Given a float ndarray it works on the
    array in its own byte order and returns one of the same dtype and shape.
    """

    codec_id = "tiff_predictor_3"
    BYTES_PER_SAMPLE = (2, 4, 8)
    SAMPLE_KINDS = "f"
    SAMPLE_KIND_NAMES = "floating-point"

    def encode(self, buf: Any) -> np.ndarray:
        raw, bps, row_samples, big, restore = self._layout(buf)
        samples = raw.reshape(raw.shape[0], row_samples, bps)
        if not big:
            samples = samples[:, :, ::-1]  # most significant byte first
        planes = np.ascontiguousarray(samples.transpose(0, 2, 1)).reshape(raw.shape)
        spp = self.samples_per_pixel
        out = planes.copy()
        np.subtract(planes[:, spp:], planes[:, :-spp], out=out[:, spp:])
        return restore(out)

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        raw, bps, row_samples, big, restore = self._layout(buf)
        spp = self.samples_per_pixel
        strided = raw.reshape(raw.shape[0], raw.shape[1] // spp, spp)
        sums = np.cumsum(strided, axis=1, dtype=np.uint8)
        samples = sums.reshape(raw.shape[0], bps, row_samples).transpose(0, 2, 1)
        if not big:
            samples = samples[:, :, ::-1]
        return self._finish(restore(np.ascontiguousarray(samples)), out)
