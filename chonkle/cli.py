"""The ``chonkle`` command: decode and encode chunks, and report the Wasm engines."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from chonkle import __version__, progress
from chonkle.engine.registry import RUNTIME_ENV_VAR, resolve_runtime_name, runtime_statuses
from chonkle.errors import ChonkleError
from chonkle.files import atomic_write
from chonkle.pipeline import Pipeline
from chonkle.sources import fetch_module
from chonkle.sources.cache import ModuleCache
from chonkle.spec import load_pipeline_spec, read_pipeline_document, rebase_file_uris


class CliError(ChonkleError):
    """A problem with the command line's own inputs or outputs (files, arguments)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ChonkleError as exc:
        print(_error_line(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `chonkle inspect X | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _error_line(exc: ChonkleError) -> str:
    """``chonkle: error: <message>``, on one line; details a message carries on further lines
    (a compiler's output) follow it, indented."""
    first, *details = str(exc).strip().splitlines() or [type(exc).__name__]
    first = first.removeprefix("error: ").removeprefix("Error: ")
    return "\n".join([f"chonkle: error: {first}", *(f"  {line}" for line in details)])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chonkle",
        description="Decode and encode array chunks with codec pipelines of numcodecs and "
                    "WebAssembly codecs.",
    )
    parser.add_argument("--version", action="version", version=f"chonkle {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    runtime_help = f"Wasm engine (default: ${RUNTIME_ENV_VAR}, else wasmtime)"

    decode = commands.add_parser("decode", help="decode an encoded chunk to an array",
                                 description="Decode CHUNK with its pipeline. Without -o, print "
                                             "the array's shape, dtype and top-left corner.")
    decode.add_argument("chunk", type=Path, metavar="CHUNK")
    decode.add_argument("--pipeline", type=Path, help="pipeline JSON (default: CHUNK.json)")
    decode.add_argument("-o", "--output", type=Path, help="write the array to this .npy file")
    decode.add_argument("--runtime", help=runtime_help)
    decode.set_defaults(handler=_decode)

    encode = commands.add_parser("encode", help="encode an array (.npy) to a chunk",
                                 description="Encode the array in IN.npy with a pipeline.")
    encode.add_argument("array", type=Path, metavar="IN.npy")
    encode.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                        help="where to write the encoded chunk")
    encode.add_argument("--pipeline", type=Path,
                        help="pipeline JSON (default: OUT.json); saved as OUT.json unless "
                             "that exists")
    encode.add_argument("--no-sidecar", action="store_true",
                        help="do not save the pipeline as OUT.json")
    encode.add_argument("--runtime", help=runtime_help)
    encode.set_defaults(handler=_encode)

    runtimes = commands.add_parser("runtimes", help="list the Wasm engines and their state")
    runtimes.set_defaults(handler=_runtimes)

    cache = commands.add_parser("cache", help="inspect, clear or warm the module cache",
                                description="Downloaded modules are cached under "
                                            "$CHONKLE_CACHE_DIR (default: your cache folder, "
                                            "~/.cache/chonkle on Linux).")
    cache_commands = cache.add_subparsers(title="cache commands", required=True,
                                          metavar="COMMAND")
    cache_commands.add_parser("list", help="list cached modules").set_defaults(
        handler=_cache_list)
    cache_commands.add_parser("clear", help="delete every cached module and compiled code"
                              ).set_defaults(handler=_cache_clear)
    fetch = cache_commands.add_parser("fetch", help="download every Wasm module of a pipeline")
    fetch.add_argument("pipeline", type=Path, metavar="PIPELINE")
    fetch.set_defaults(handler=_cache_fetch)

    build = commands.add_parser(
        "build-codec", help="compile a codec folder (C or Zig) to a .wasm module",
        description="Compile FOLDER (its .c files, or FOLDER/NAME.zig) into a Wasm codec with "
                    "the ziglang package, as docs/writing-a-codec.md describes.")
    build.add_argument("folder", type=Path, metavar="FOLDER")
    build.add_argument("-o", "--output", type=Path, help="output .wasm (default: FOLDER.wasm)")
    build.set_defaults(handler=_build_codec)

    # ---- TIFF / COG: inspect ----
    tiff_inspect = commands.add_parser(
        "inspect", help="list a TIFF's levels and their pipelines (JSON)",
        description="Print the levels of a TIFF or COG (a path or an https:// URL): full "
                    "resolution, then overviews, each with its shape, dtype, tile shape, tile "
                    "count and pipeline, as one JSON document. With --level N, print only that "
                    "level's pipeline: the sidecar of any of its tiles.")
    tiff_inspect.add_argument("source", metavar="FILE_OR_URL")
    tiff_inspect.add_argument("--level", type=int, help="print only this level's pipeline")
    tiff_inspect.add_argument("--prefer", choices=["wasm", "native"], default="wasm",
                              help="codecs for the pipelines: the shipped Wasm ones (default) "
                                   "or native ones")
    tiff_inspect.set_defaults(handler=_tiff_inspect)

    # ---- TIFF / COG: read ----
    tiff_read = commands.add_parser(
        "read", help="read a TIFF level, or a window of it, to an array",
        description="Read a level of a TIFF or COG (a path or an https:// URL), or a window of "
                    "it, decoding its tiles with pipelines taken from its tags. Without -o, "
                    "print the array's shape, dtype and top-left corner.")
    tiff_read.add_argument("source", metavar="FILE_OR_URL")
    tiff_read.add_argument("--level", type=int, default=0,
                           help="0: full resolution (default); 1, 2, ...: overviews")
    tiff_read.add_argument("--window", metavar="R0:R1,C0:C1",
                           help="rows R0 to R1 and columns C0 to C1 (ends excluded)")
    tiff_read.add_argument("-o", "--output", type=Path, help="write the array to this .npy file")
    tiff_read.add_argument("--runtime", help=runtime_help)
    tiff_read.add_argument("--prefer", choices=["wasm", "native"], default="wasm",
                           help="decode with the shipped Wasm codecs (default) or native ones")
    tiff_read.add_argument("--workers", type=int,
                           help="decode on this many workers (default: every core)")
    tiff_read.set_defaults(handler=_tiff_read)
    return parser


def _decode(args: argparse.Namespace) -> int:
    """CHUNK with its pipeline (--pipeline, else the sidecar CHUNK.json); with neither, as a
    chunk of the Zarr array whose metadata is in a folder above it (v2 keys such as 0.0, v3
    keys such as c/0/0), where a chunk that is not stored holds the array's fill value."""
    if not args.chunk.name or args.chunk.is_dir():
        raise CliError(f"{args.chunk}: a folder, not a chunk file")
    if args.pipeline is not None or args.chunk.with_name(args.chunk.name + ".json").is_file():
        chunk = _read_bytes(args.chunk, "the chunk to decode")
        pipeline = Pipeline.load(_sidecar(args.pipeline, args.chunk), runtime=args.runtime)
        array = pipeline.decode(chunk)
    else:
        from chonkle.formats.zarr import locate_chunk  # only when decoding a Zarr chunk

        located = locate_chunk(args.chunk, runtime=args.runtime)
        if located is None:
            _read_bytes(args.chunk, "the chunk to decode")  # a missing chunk is said first
            try:
                _sidecar(args.pipeline, args.chunk)
            except CliError as exc:
                raise CliError(f"{exc}, and no Zarr array's metadata (zarr.json or .zarray) "
                               f"is in a folder above {args.chunk}") from None
        zarr_array, key = located  # type: ignore[misc]
        print(f"chunk {key} of the Zarr v{zarr_array.zarr_format} array {zarr_array.folder}")
        if args.chunk.exists():
            array = zarr_array.decode_chunk(_read_bytes(args.chunk, "the chunk to decode"))
        else:
            array = zarr_array.fill_chunk()
            print(f"note: {args.chunk} is not stored, so it holds the array's fill value "
                  f"({zarr_array.fill_value})", file=sys.stderr)
    if args.output is not None:
        _write_atomically(args.output, lambda f: np.save(f, array, allow_pickle=False))
        print(f"wrote {args.output} ({_describe(array)})")
    else:
        print(_describe(array))
        print(_corner(array))
    return 0


def _encode(args: argparse.Namespace) -> int:
    array = _read_npy(args.array)
    pipeline_path = _sidecar(args.pipeline, args.output)
    pipeline = Pipeline.load(pipeline_path, runtime=args.runtime)
    chunk = pipeline.encode(array)
    _write_atomically(args.output, lambda f: f.write(chunk))
    print(f"wrote {args.output} ({len(chunk)} bytes from {_describe(array)})")
    if args.pipeline is not None and not args.no_sidecar:
        _write_sidecar(args.output, pipeline_path)
    return 0


NPY_MAGIC = b"\x93NUMPY"


def _read_npy(path: Path) -> np.ndarray:
    """The array in a .npy file; anything else is refused with what is expected instead."""
    with _opened(path, "the array to encode") as file:
        if file.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise CliError(f"{path}: not a .npy file; chonkle encode reads one array saved "
                           "with numpy.save")
        file.seek(0)
        try:
            return np.load(file, allow_pickle=False)
        except ValueError as exc:
            if "pickle" in str(exc):
                raise CliError(f"{path}: the array holds Python objects; chonkle encodes "
                               "arrays of numbers") from None
            raise CliError(f"{path}: a damaged .npy file ({exc})") from exc
        except OSError as exc:
            raise CliError(f"{path}: a damaged .npy file ({exc})") from exc


def _write_sidecar(output: Path, pipeline_path: Path) -> None:
    """Save the pipeline as OUT.json, so `chonkle decode OUT` finds it; an existing sidecar
    is never overwritten."""
    sidecar = output.with_name(output.name + ".json")
    document, base_dir = read_pipeline_document(pipeline_path)
    text = json.dumps(rebase_file_uris(document, base_dir, output.resolve().parent),
                      indent=2) + "\n"
    if sidecar.exists():
        if sidecar.resolve() != pipeline_path.resolve() and sidecar.read_text() != text:
            print(f"note: kept the existing {sidecar}; decode {output} with --pipeline "
                  f"{pipeline_path}", file=sys.stderr)
        return
    _write_atomically(sidecar, lambda f: f.write(text.encode("utf-8")))
    print(f"wrote {sidecar} (its pipeline)")


def _runtimes(args: argparse.Namespace) -> int:
    default = resolve_runtime_name()
    for status in runtime_statuses():
        marker = "*" if status.name == default else " "
        if status.available:
            print(f"{marker} {status.name:<10} {status.version:<10} available; limits: "
                  f"{status.limits}")
        else:
            print(f"{marker} {status.name:<10} {'-':<10} unavailable: {status.reason}")
    print(f"(* = used by default; set {RUNTIME_ENV_VAR} or --runtime to choose)")
    return 0


def _cache_list(args: argparse.Namespace) -> int:
    cache = ModuleCache()
    entries = cache.entries()
    print(f"{len(entries)} module(s) in {cache.root}")
    for entry in entries:
        fetched = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.fetched))
        print(f"  {entry.uri}\n    sha256 {entry.sha256}  {_size(entry.size)}  fetched {fetched}")
    return 0


def _cache_clear(args: argparse.Namespace) -> int:
    cache = ModuleCache()
    print(f"removed {cache.clear()} module(s) and all compiled code from {cache.root}")
    return 0


def _cache_fetch(args: argparse.Namespace) -> int:
    spec = load_pipeline_spec(args.pipeline)
    remote = [s for s in spec.steps if s.type == "wasm" and s.uri and "://" in s.uri
              and not s.uri.lower().startswith("file:")]
    for step in remote:
        with progress.bar(None, step.uri[-40:], unit="B", unit_scale=True,
                          unit_divisor=1024) as shown:
            def advance(done: int, total: int | None, shown=shown) -> None:
                shown.total = total
                shown.update(done - shown.n)

            try:
                wasm = fetch_module(step.uri, step.name, base_dir=spec.base_dir,
                                    sha256=step.sha256, progress=advance)
            except ChonkleError as exc:
                exc.step = exc.step or step.label
                raise
        print(f"{step.label}: {step.uri} ({_size(len(wasm))}, sha256 "
              f"{hashlib.sha256(wasm).hexdigest()})")
    if not remote:
        print("the pipeline has no https:// or oci:// modules to fetch")
    return 0


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def _build_codec(args: argparse.Namespace) -> int:
    from chonkle.codec_build import build_codec  # the build machinery is for authors only

    output = build_codec(args.folder, args.output)
    print(f"built {output} ({output.stat().st_size} bytes)")
    return 0


def _sidecar(pipeline: Path | None, data_file: Path) -> Path:
    path = pipeline or data_file.with_name(data_file.name + ".json")
    if not path.is_file():
        how = "" if pipeline else " (the default sidecar; pass --pipeline to use another file)"
        raise CliError(f"pipeline file {path} does not exist{how}")
    return path


@contextlib.contextmanager
def _opened(path: Path, what: str) -> Iterator[IO[bytes]]:
    try:
        file = open(path, "rb")  # noqa: SIM115 (closed below; errors are reported first)
    except FileNotFoundError:
        raise CliError(f"{path}: no such file ({what})") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, not a file ({what})") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read it: {exc.strerror}") from exc
    with file:
        yield file


def _read_bytes(path: Path, what: str) -> bytes:
    with _opened(path, what) as file:
        try:
            return file.read()
        except OSError as exc:
            raise CliError(f"{path}: cannot read it: {exc.strerror}") from exc


def _write_atomically(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Replace ``path`` in one rename (never a partial file), with the usual permissions."""
    try:
        atomic_write(path, write)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _describe(array: np.ndarray) -> str:
    return f"shape {list(array.shape)}, dtype {array.dtype}"


def _corner(array: np.ndarray, size: int = 6) -> str:
    corner = array[tuple(slice(0, size) for _ in range(array.ndim))]
    label = "top-left corner" if corner.shape != array.shape else "values"
    return f"{label}:\n{np.array2string(corner, threshold=1000)}"


# ---- TIFF / COG: inspect and read ----------------------------------------------------------

def _tiff_inspect(args: argparse.Namespace) -> int:
    from chonkle.formats.tiff import open_tiff

    tiff = open_tiff(args.source, prefer=args.prefer)
    if args.level is not None:
        print(json.dumps(tiff.level(args.level).spec, indent=2))
        return 0
    levels = [{
        "level": level.index, "image": level.image, "overview": level.overview,
        "ifd": list(level.ifd), "shape": list(level.shape), "dtype": level.dtype.name,
        "tiled": level.tiled, "tile_shape": list(level.tile_shape), "tiles": level.tile_count,
        "compression": level.compression, "predictor": level.predictor,
        "pipeline": level.spec,
    } for level in tiff.levels]
    document = {"source": tiff.name, "byte_order": tiff.byte_order, "bigtiff": tiff.bigtiff,
                "geo_tags": tiff.geo_tags}
    # One JSON document, laid out one level per line (indenting every list would spread a
    # level over fifty lines).
    lines = [f"  {json.dumps(key)}: {json.dumps(value, default=_tiff_json_value)}," for
             key, value in document.items()]
    rows = ",\n".join(f"    {json.dumps(level, default=_tiff_json_value)}" for level in levels)
    print("{\n" + "\n".join(lines) + '\n  "levels": [\n' + rows + "\n  ]\n}")
    return 0


def _tiff_json_value(value: object) -> object:
    """Tag values tifffile gives that JSON has no type for."""
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _tiff_read(args: argparse.Namespace) -> int:
    import re

    from chonkle.formats.tiff import open_tiff

    window = None
    if args.window is not None:
        match = re.fullmatch(r"\s*(\d+):(\d+)\s*,\s*(\d+):(\d+)\s*", args.window)
        if match is None:
            raise CliError(f"--window {args.window!r} is not R0:R1,C0:C1 (such as "
                           "0:512,1024:1536)")
        r0, r1, c0, c1 = (int(n) for n in match.groups())
        window = ((r0, r1), (c0, c1))
    tiff = open_tiff(args.source, prefer=args.prefer, runtime=args.runtime)
    level = tiff.level(args.level)
    count = len(tiff.tiles(args.level, window))
    array = tiff.read(args.level, window, workers=args.workers)  # a bar on a terminal only
    if args.output is not None:
        _write_atomically(args.output, lambda f: np.save(f, array, allow_pickle=False))
        print(f"wrote {args.output} ({_describe(array)})")
    else:
        where = ("" if window is None else
                 ", rows {}:{}, columns {}:{}".format(*window[0], *window[1]))
        print(f"{tiff.name}: level {level.index} of {len(tiff.levels)}{where}: {count} "
              f"{'tiles' if level.tiled else 'strips'} decoded, {level.compression}, "
              f"predictor {level.predictor}")
        print(_describe(array))
        print(_corner(array))
    return 0


if __name__ == "__main__":
    sys.exit(main())
