"""Key generation and the key types the project supports.

Only RSA and NIST EC keys: the OwnTracks apps reject Ed25519 (owntracks/ios#639) and
EC P-256 is not confirmed on either phone, so RSA 2048 is the client default.
"""

from __future__ import annotations

from typing import Literal, get_args

from cryptography.hazmat.primitives.asymmetric import ec, rsa

ClientKeyType = Literal["rsa2048", "rsa3072", "rsa4096", "ec-p256"]
CAKeyType = Literal["rsa4096", "ec-p384"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

CLIENT_KEY_TYPES: tuple[str, ...] = get_args(ClientKeyType)
CA_KEY_TYPES: tuple[str, ...] = get_args(CAKeyType)

_RSA_BITS = {"rsa2048": 2048, "rsa3072": 3072, "rsa4096": 4096}
_CURVES: dict[str, type[ec.EllipticCurve]] = {"ec-p256": ec.SECP256R1, "ec-p384": ec.SECP384R1}

# Smallest keys we sign for; anything weaker is a configuration or upload mistake.
MIN_RSA_BITS = 2048
ALLOWED_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})


def _generate(key_type: str) -> PrivateKey:
    if key_type in _RSA_BITS:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type]())
    raise ValueError(f"Unknown key type {key_type!r}.")


def generate_private_key(key_type: ClientKeyType = "rsa2048") -> PrivateKey:
    """Fresh key for a client or server certificate (slow for RSA: call it off the event loop)."""
    if key_type not in CLIENT_KEY_TYPES:
        choices = ", ".join(CLIENT_KEY_TYPES)
        raise ValueError(f"Unknown key type {key_type!r}; choose one of {choices}.")
    return _generate(key_type)


def generate_ca_key(key_type: CAKeyType = "rsa4096") -> PrivateKey:
    """Fresh key for a new CA."""
    if key_type not in CA_KEY_TYPES:
        choices = ", ".join(CA_KEY_TYPES)
        raise ValueError(f"Unknown CA key type {key_type!r}; choose one of {choices}.")
    return _generate(key_type)


def check_key_strength(key: object) -> PrivateKey:
    """Return ``key`` if it is a key type we sign with or for; else raise ``ValueError``.

    Why: a caller passing an Ed25519 or 1024-bit key would get a certificate the phones
    reject or that is too weak, long after the mistake was made.
    """
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits is too small (min {MIN_RSA_BITS}).")
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in ALLOWED_CURVES:
            raise ValueError(f"EC curve {key.curve.name} is not supported.")
        return key
    raise ValueError(f"Unsupported key type {type(key).__name__}: use RSA or EC (P-256/P-384).")
