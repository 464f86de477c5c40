"""Ed25519 signing (RFC 8032, section 5.1) in plain Python, for generate.py only.

Written from the RFC's definitions so the vector generator keeps needing nothing but
the standard library. It is slow and makes no attempt at constant time: it signs
fixed test keys, never a real secret. Ed25519 is deterministic, so the router (ring),
the JS SDK (WebCrypto) and the Python SDK (cryptography) must all agree with it.
"""

from __future__ import annotations

import hashlib

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z


def _recover_x(y: int, sign: int) -> int:
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        raise ValueError("not a point")
    return P - x if x & 1 != sign else x


_BY = 4 * pow(5, P - 2, P) % P
_BX = _recover_x(_BY, 0)
BASE: Point = (_BX, _BY, 1, _BX * _BY % P)


def _add(a: Point, b: Point) -> Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(k: int, point: Point) -> Point:
    out: Point = (0, 1, 1, 0)  # the neutral element
    while k:
        if k & 1:
            out = _add(out, point)
        point = _add(point, point)
        k >>= 1
    return out


def _encode(point: Point) -> bytes:
    x, y, z, _ = point
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _sha512_int(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def _expand(seed: bytes) -> tuple[int, bytes]:
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def public_key(seed: bytes) -> bytes:
    """The 32-byte public key of a 32-byte seed."""
    a, _ = _expand(seed)
    return _encode(_mul(a, BASE))


def sign(seed: bytes, message: bytes) -> bytes:
    """The 64-byte signature of ``message`` by the key with this seed."""
    a, prefix = _expand(seed)
    pub = _encode(_mul(a, BASE))
    r = _sha512_int(prefix, message) % L
    big_r = _encode(_mul(r, BASE))
    k = _sha512_int(big_r, pub, message) % L
    return big_r + ((r + k * a) % L).to_bytes(32, "little")
