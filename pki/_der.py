"""Just enough DER to encode CRL entries and splice them into a TBSCertList.

Why by hand: cryptography can only take revoked entries as Python objects, one per entry,
and re-encodes all of them on every signature; a CRL with 100,000 entries then costs more
than ``openssl ca -gencrl``. Entries encoded once as bytes are cheap to join. Everything
else in a CRL (names, extensions, algorithm identifiers) still comes from cryptography.
Only definite lengths and single-byte tags: that is all a CRL uses.
"""

from __future__ import annotations

from collections.abc import Iterator

INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
OBJECT_IDENTIFIER = 0x06
ENUMERATED = 0x0A
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30
CONTEXT_0 = 0xA0  # [0] EXPLICIT, constructed


# Single bytes, prebuilt: header() runs twice per CRL entry and bytes((a, b)) is slow.
_BYTES = [bytes((value,)) for value in range(0x100)]


def header(tag: int, length: int) -> bytes:
    """Tag and definite length (short form below 128, else long form) of a TLV."""
    if length < 0x80:
        return _BYTES[tag] + _BYTES[length]
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size


def tlv(tag: int, content: bytes) -> bytes:
    return header(tag, len(content)) + content


def read(data: bytes, offset: int = 0) -> tuple[int, int, int]:
    """The TLV at ``offset`` as (tag, content start, end); ValueError if it is not DER."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER header")
    tag, first = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte DER tags are not expected here")
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        size = first & 0x7F
        if size == 0 or size > 4 or start + size > len(data):
            raise ValueError("unsupported or truncated DER length")
        length = int.from_bytes(data[start : start + size], "big")
        start += size
    end = start + length
    if end > len(data):
        raise ValueError("DER content runs past the end")
    return tag, start, end


def children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(tag, start of TLV, end of TLV) of each element between ``start`` and ``end``."""
    offset = start
    while offset < end:
        tag, _, element_end = read(data, offset)
        if element_end > end:
            raise ValueError("DER element runs past its parent")
        yield tag, offset, element_end
        offset = element_end
