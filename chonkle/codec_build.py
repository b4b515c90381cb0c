"""Build a Wasm codec from a folder of C or Zig sources with the ziglang package's compilers.

The same function builds the codecs chonkle ships (`make wasm`) and a codec author's own
(`chonkle build-codec FOLDER`), so both get the flags the contract needs: a wasm32-wasi
reactor, optimized, stripped, and byte-for-byte reproducible.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from chonkle.engine import config_schema
from chonkle.engine.wasm_binary import append_custom_section
from chonkle.errors import ChonkleError


class BuildError(ChonkleError):
    """A codec could not be compiled (missing compiler, no sources, or a compiler error)."""


# No global -msimd128: wasmer 1.1's compiler predates the final SIMD spec and rejects
# opcodes clang's auto-vectorizer emits (i64x2.extend_low_i32x4_u, ...). Codecs opt in per
# function with __attribute__((target("simd128"))), using operations both engines accept.
# A 1 MiB stack (the toolchain's default is 16 MiB, all of it linear memory every instance
# starts with): codecs keep their tables in globals or on the heap.
STACK_SIZE = 1 << 20
CFLAGS = [
    "--target=wasm32-wasi", "-mexec-model=reactor", "-O3", "-mbulk-memory",
    "-std=c11", "-Wall", "-Wextra", "-Werror", "-s", f"-Wl,-z,stack-size={STACK_SIZE}",
]
ZIGFLAGS = ["-target", "wasm32-wasi", "-O", "ReleaseFast", "-fno-entry", "-rdynamic", "-fstrip",
            "--stack", str(STACK_SIZE)]


def sdk_dir() -> Path:
    """The codec support files (chonkle_codec.h, chonkle.zig): in a wheel, chonkle/sdk;
    in a source checkout, wasm-src/include."""
    packaged = Path(str(resources.files("chonkle") / "sdk"))
    if (packaged / "chonkle_codec.h").is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "wasm-src" / "include"


def is_codec_dir(path: Path) -> bool:
    return path.is_dir() and (any(path.glob("*.c")) or (path / f"{path.name}.zig").is_file())


SCHEMA_FILE = "config.schema.json"


def build_codec(folder: Path, output: Path | None = None, include: Path | None = None) -> Path:
    """Compile `folder` into `output` (default: <folder>.wasm beside the folder).

    A folder holding <name>.zig is a Zig codec whose root is that file, with chonkle.zig
    importable as "chonkle"; otherwise all its .c files are compiled together, with the
    support headers on the include path. A `config.schema.json` in the folder is embedded as
    the module's ``chonkle.config`` section, so pipelines are checked against it on load.
    The compiler writes into a temporary folder and the finished module is then moved into
    place, so a failed build leaves nothing behind.
    """
    folder = folder.resolve()
    if not is_codec_dir(folder):
        raise BuildError(f"{folder} holds no codec sources (*.c, or {folder.name}.zig)")
    if importlib.util.find_spec("ziglang") is None:
        raise BuildError('building codecs needs the ziglang package: pip install '
                         '"ziglang>=0.14.1,<0.15"')
    schema = _schema_section(folder / SCHEMA_FILE)
    include = (include or sdk_dir()).resolve()
    output = (output or folder.with_suffix(".wasm")).resolve()
    with tempfile.TemporaryDirectory() as scratch:
        built = Path(scratch) / f"{folder.name}.wasm"
        zig_root = folder / f"{folder.name}.zig"
        if zig_root.is_file():
            command = ["build-exe", *ZIGFLAGS, "--dep", "chonkle", f"-Mroot={zig_root.name}",
                       f"-Mchonkle={os.path.relpath(include / 'chonkle.zig', folder)}",
                       "--name", folder.name, f"-femit-bin={built}"]
        else:
            sources = sorted(p.name for p in folder.glob("*.c"))
            command = ["cc", *CFLAGS, f"-I{os.path.relpath(include, folder)}", *sources,
                       "-o", str(built)]
        result = subprocess.run([sys.executable, "-m", "ziglang", *command], cwd=folder,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"compiling {folder.name} failed:\n{result.stderr.strip()}")
        if schema is not None:
            built.write_bytes(append_custom_section(built.read_bytes(),
                                                    config_schema.SECTION_NAME, schema))
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(built), str(output))
    return output


def _schema_section(path: Path) -> bytes | None:
    """The folder's configuration schema, checked and minified, or None when there is none."""
    if not path.is_file():
        return None
    payload = path.read_bytes()
    try:
        schema = config_schema.parse_schema(payload)
    except config_schema.SchemaError as exc:
        raise BuildError(f"{path}: {exc}") from None
    return json.dumps(schema, separators=(",", ":"), sort_keys=True).encode("utf-8")
