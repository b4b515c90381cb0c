"""One exception hierarchy for everything chonkle reports.

Every error that concerns a pipeline step carries that step's label ("step 1
(tiff_predictor_2)") so a user reading a traceback from deep inside a Zarr read
knows which codec of which pipeline failed, without a debugger.
"""

from __future__ import annotations


class ChonkleError(Exception):
    """Root of every error chonkle raises on purpose.

    ``step`` names the pipeline step at fault; ``chunk`` the index of the chunk, when many
    were decoded at once (``Pipeline.decode_many``).
    """

    def __init__(self, message: str, *, step: str | None = None,
                 chunk: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.chunk = chunk

    def __str__(self) -> str:
        where = ", ".join(w for w in (None if self.chunk is None else f"chunk {self.chunk}",
                                      self.step) if w)
        return f"{where}: {self.message}" if where else self.message

    def __reduce__(self) -> tuple:
        """Pickled whole (worker processes send errors back), keyword fields included."""
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[ChonkleError], message: str, fields: dict) -> ChonkleError:
    error = cls(message)
    error.__dict__.update(fields)
    return error


class SpecError(ChonkleError, ValueError):
    """The pipeline description is malformed or names something that does not exist."""


class SourceError(ChonkleError):
    """A codec module could not be fetched or read from its URI."""


class CodecError(ChonkleError):
    """A codec rejected its input or configuration, or failed while running."""


class WasmAbiError(CodecError):
    """A Wasm module does not follow the chonkle codec contract (exports, signatures, pointers)."""


class WasmTrap(CodecError):
    """Wasm code trapped (unreachable, out-of-bounds access, ...); its instance is discarded."""


class RuntimeUnavailable(ChonkleError):
    """The requested Wasm engine is unknown, not installed, or cannot load on this Python."""


class LimitExceeded(ChonkleError):
    """A sandbox limit was reached: memory, output size, time, module size or spec size.

    The message names the limit and the setting that raises it; the instance that hit it is
    discarded, so the next call starts clean.
    """


class SettingError(ChonkleError, ValueError):
    """An environment setting (CHONKLE_*) has a value chonkle cannot use."""
