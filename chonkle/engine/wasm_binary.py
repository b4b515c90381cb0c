"""Reading and rewriting the few parts of a Wasm binary that chonkle needs, before any engine
sees it: custom sections (a codec's declared configuration), and the limits of its memories
and tables (so an engine without store limits still cannot grow past chonkle's caps).

The module comes from anywhere, so every length is checked against the bytes that are
really there; a malformed module is a :class:`MalformedModule`, never an IndexError.
"""

from __future__ import annotations

from dataclasses import dataclass

MAGIC = b"\0asm"
VERSION = b"\1\0\0\0"
PAGE_SIZE = 65536

CUSTOM, IMPORT, TABLE, MEMORY = 0, 2, 4, 5
_IMPORT_TABLE, _IMPORT_MEMORY = 1, 2


class MalformedModule(ValueError):
    """The bytes are not a well-formed Wasm binary (or use an encoding chonkle refuses)."""


@dataclass(frozen=True)
class Section:
    id: int
    start: int  # offset of the section's payload
    end: int

    def payload(self, data: bytes) -> bytes:
        return data[self.start:self.end]


@dataclass(frozen=True)
class Limits:
    minimum: int
    maximum: int | None
    shared: bool = False
    memory64: bool = False


@dataclass(frozen=True)
class ResourceShape:
    """The memories and tables a module declares or imports, with their limits."""

    memories: tuple[Limits, ...]
    tables: tuple[Limits, ...]


class _Reader:
    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data, self.at = data, start
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.at >= self.end:
            raise MalformedModule("unexpected end of a section")
        value = self.data[self.at]
        self.at += 1
        return value

    def u32(self) -> int:
        return self._leb(32)

    def u64(self) -> int:
        return self._leb(64)

    def _leb(self, bits: int) -> int:
        result = shift = 0
        for _ in range((bits + 6) // 7):
            value = self.byte()
            result |= (value & 0x7F) << shift
            shift += 7
            if value < 0x80:
                if result >> bits:
                    raise MalformedModule("integer too large")
                return result
        raise MalformedModule("integer representation too long")

    def skip(self, count: int) -> None:
        if count > self.end - self.at:
            raise MalformedModule("a length runs past the end of its section")
        self.at += count

    def name(self) -> str:
        length = self.u32()
        start = self.at
        self.skip(length)
        try:
            return self.data[start:self.at].decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedModule("a name is not UTF-8") from None

    def limits(self) -> Limits:
        flags = self.byte()
        if flags > 0x07:
            raise MalformedModule(f"unknown limits flags 0x{flags:02x}")
        memory64 = bool(flags & 0x04)
        read = self.u64 if memory64 else self.u32
        minimum = read()
        maximum = read() if flags & 0x01 else None
        return Limits(minimum, maximum, shared=bool(flags & 0x02), memory64=memory64)


def sections(data: bytes) -> list[Section]:
    """The module's sections in order; checks the header and that every section fits."""
    if data[:4] != MAGIC:
        raise MalformedModule("not a Wasm binary (no \\0asm header)")
    if data[4:8] != VERSION:
        raise MalformedModule("not a Wasm core module of version 1")
    reader, found = _Reader(data, 8), []
    while reader.at < len(data):
        section_id = reader.byte()
        size = reader.u32()
        start = reader.at
        reader.skip(size)
        found.append(Section(section_id, start, reader.at))
    return found


def custom_section(data: bytes, name: str) -> bytes | None:
    """The payload of the first custom section called `name`, if any."""
    for section in sections(data):
        if section.id == CUSTOM:
            reader = _Reader(data, section.start, section.end)
            if reader.name() == name:
                return data[reader.at:section.end]
    return None


def append_custom_section(data: bytes, name: str, payload: bytes) -> bytes:
    """`data` with a custom section added at the end (anywhere is valid for custom sections)."""
    sections(data)  # refuse to extend something that is not a module
    encoded_name = name.encode("utf-8")
    body = _leb128(len(encoded_name)) + encoded_name + payload
    return data + bytes([CUSTOM]) + _leb128(len(body)) + body


def resource_shape(data: bytes) -> ResourceShape:
    """Every memory and table of the module, imported or defined, with its limits."""
    memories: list[Limits] = []
    tables: list[Limits] = []
    for section in sections(data):
        reader = _Reader(data, section.start, section.end)
        if section.id == IMPORT:
            imported_memories, imported_tables = _imported_resources(reader)
            memories += imported_memories
            tables += imported_tables
        elif section.id == TABLE:
            for _ in range(reader.u32()):
                if reader.byte() == 0x40:  # a table with an initializer expression
                    raise MalformedModule("tables with initializer expressions are not supported")
                tables.append(reader.limits())
        elif section.id == MEMORY:
            memories.extend(reader.limits() for _ in range(reader.u32()))
    return ResourceShape(tuple(memories), tuple(tables))


def cap_resources(data: bytes, max_memory_pages: int, max_table_elements: int) -> bytes:
    """The module with every defined memory's and table's maximum lowered to the caps.

    Growing past a declared maximum fails inside the module (``memory.grow`` returns -1), so
    an engine that cannot limit a store still holds the caps. A module whose initial size is
    already over a cap, or that imports a memory or table, is refused (MalformedModule names
    which). Other sections are copied byte for byte.
    """
    out = bytearray(data[:8])
    for section in sections(data):
        payload = section.payload(data)
        if section.id == IMPORT:
            if any(_imported_resources(_Reader(data, section.start, section.end))):
                raise MalformedModule("the module imports a memory or table; codecs may not")
        elif section.id == MEMORY:
            payload = _capped_vector(data, section, max_memory_pages, "memory", "pages",
                                     table=False)
        elif section.id == TABLE:
            payload = _capped_vector(data, section, max_table_elements, "table", "elements",
                                     table=True)
        out += bytes([section.id]) + _leb128(len(payload)) + payload
    return bytes(out)


def _imported_resources(reader: _Reader) -> tuple[list[Limits], list[Limits]]:
    memories, tables = [], []
    for _ in range(reader.u32()):
        reader.name(), reader.name()
        kind = reader.byte()
        if kind == 0:  # function: a type index
            reader.u32()
        elif kind == _IMPORT_TABLE:
            reader.byte()
            tables.append(reader.limits())
        elif kind == _IMPORT_MEMORY:
            memories.append(reader.limits())
        elif kind == 3:  # global: value type and mutability
            reader.byte(), reader.byte()
        else:
            raise MalformedModule(f"unknown import kind {kind}")
    return memories, tables


def _capped_vector(data: bytes, section: Section, cap: int, what: str, unit: str, *,
                   table: bool) -> bytes:
    reader = _Reader(data, section.start, section.end)
    count = reader.u32()
    body = bytearray(_leb128(count))
    for _ in range(count):
        if table:
            body.append(reader.byte())  # element type
        limits = reader.limits()
        if limits.memory64:
            raise MalformedModule("64-bit memories are disabled")
        if limits.minimum > cap:
            raise MalformedModule(f"a {what} starts at {limits.minimum} {unit}, over the cap of "
                                  f"{cap} {unit}")
        maximum = cap if limits.maximum is None else min(limits.maximum, cap)
        body.append(0x03 if limits.shared else 0x01)
        body += _leb128(limits.minimum) + _leb128(maximum)
    if reader.at != section.end:
        raise MalformedModule(f"trailing bytes in the {what} section")
    return bytes(body)


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
