"""Valid SNMPv3 notifications, built byte by byte, for the fuzz targets that must get past USM.

A forged v3 message stops at the digest check; to fuzz what comes after it (decryption, the
scoped PDU, the varbinds of an authenticated sender) a message must carry the right HMAC for
whatever it holds. `build()` assembles one from its parts, each of which a target may have
mutated, then encrypts the scoped PDU (authPriv) and signs the whole message last, so the
mutation is what the receiver's USM sees after it has authenticated the sender.

Keys and ciphers follow RFC 3414 (key localisation, HMAC-MD5/SHA-96, DES-CBC), RFC 3826
(AES-CFB128) and RFC 7860 (HMAC-SHA-2), written here with hashlib and cryptography rather
than with pysnmp's own services: the receiver decrypts and authenticates with pysnmp, so a
message it delivers shows the two agree on the standard, not only with themselves.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from netmon.credentials import Secret, SnmpCredential

# Hash, digest length (RFC 3414 §6-7, RFC 7860 §4.2.2) per auth protocol.
_AUTH = {"MD5": ("md5", 12), "SHA": ("sha1", 12), "SHA256": ("sha256", 24)}
TRAP_V2, INFORM, GET = 0xA7, 0xA6, 0xA0
AUTH_NO_PRIV, AUTH_PRIV = 0x01, 0x03


@dataclasses.dataclass(frozen=True)
class User:
    """A USM user of the fuzzed source; its passphrases are derived from its name."""

    name: str
    auth: str
    priv: str | None  # "AES" (128) or "DES"; None for authNoPriv

    @property
    def flags(self) -> int:
        return AUTH_PRIV if self.priv else AUTH_NO_PRIV

    @property
    def digest_length(self) -> int:
        return _AUTH[self.auth][1]

    def credential(self) -> SnmpCredential:
        return SnmpCredential(
            snmp_version="3",
            user=self.name,
            auth_protocol=self.auth,  # type: ignore[arg-type]
            auth_key=Secret(f"{self.name}-auth-passphrase"),
            priv_protocol=self.priv,  # type: ignore[arg-type]
            priv_key=Secret(f"{self.name}-priv-passphrase") if self.priv else None,
        )


USERS = (
    User("fz-sha-aes", "SHA", "AES"),
    User("fz-md5-des", "MD5", "DES"),
    User("fz-sha", "SHA", None),
    User("fz-sha256-aes", "SHA256", "AES"),
)


@functools.cache
def _master(passphrase: str, hash_name: str) -> bytes:
    """RFC 3414 A.2: the passphrase repeated over a megabyte, hashed."""
    raw = passphrase.encode()
    repeated = raw * (1_048_576 // len(raw) + 1)
    return hashlib.new(hash_name, repeated[:1_048_576]).digest()


@functools.cache
def keys(user: User, engine_id: bytes) -> tuple[bytes, bytes]:
    """(auth key, priv key) localised for `engine_id` (RFC 3414 §2.6)."""
    hash_name = _AUTH[user.auth][0]

    def localise(master: bytes) -> bytes:
        return hashlib.new(hash_name, master + engine_id + master).digest()

    auth = localise(_master(f"{user.name}-auth-passphrase", hash_name))
    priv = localise(_master(f"{user.name}-priv-passphrase", hash_name)) if user.priv else b""
    return auth, priv[:16]


# --- BER, as loose as a fuzzer needs: any integer, any length -------------------------------


def header(tag: int, length: int) -> bytes:
    if length < 0x80:
        return bytes((tag, length))
    size = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + length.to_bytes(size, "big")


def tlv(tag: int, body: bytes) -> bytes:
    return header(tag, len(body)) + body


def integer(value: int) -> bytes:
    return tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def link_down_varbinds(if_index: int = 7) -> bytes:
    """sysUpTime.0, snmpTrapOID.0 = linkDown, ifIndex.N: the varbinds of a plain trap."""
    return (
        tlv(0x30, tlv(0x06, bytes.fromhex("2b06010201010300")) + tlv(0x43, b"\x05"))
        + tlv(0x30, tlv(0x06, bytes.fromhex("2b060106030101040100"))
              + tlv(0x06, bytes.fromhex("2b0601060301010503")))
        + tlv(0x30, tlv(0x06, bytes.fromhex("2b060102010202010107")[:-1] + bytes((if_index,)))
              + integer(if_index))
    )  # fmt: skip


def trap_pdu(varbinds: bytes, *, tag: int = TRAP_V2, request_id: int = 7) -> bytes:
    return tlv(tag, integer(request_id) + integer(0) + integer(0) + tlv(0x30, varbinds))


def scoped_pdu(pdu: bytes, *, context_engine_id: bytes, context: bytes = b"") -> bytes:
    return tlv(0x30, tlv(0x04, context_engine_id) + tlv(0x04, context) + pdu)


# --- privacy ----------------------------------------------------------------------------------


def encrypt(user: User, priv_key: bytes, boots: int, time: int, salt: int,
            plaintext: bytes) -> tuple[bytes, bytes]:  # fmt: skip
    """(ciphertext, msgPrivacyParameters) for the user's privacy protocol."""
    if user.priv == "AES":  # RFC 3826 §3.1.2.1: IV = boots | time | the 64-bit salt
        salt_octets = (salt & (1 << 64) - 1).to_bytes(8, "big")
        iv = _u32(boots) + _u32(time) + salt_octets
        encryptor = Cipher(algorithms.AES(priv_key), CFB(iv)).encryptor()
        return encryptor.update(plaintext) + encryptor.finalize(), salt_octets
    # DES-CBC, RFC 3414 §8.1.1.1: salt = boots | a 32-bit counter, IV = salt XOR pre-IV.
    salt_octets = _u32(boots) + _u32(salt)
    iv = bytes(a ^ b for a, b in zip(salt_octets, priv_key[8:16], strict=True))
    padder = padding.PKCS7(64).padder()  # RFC 3414 lets the pad be anything: a length fits
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(TripleDES(priv_key[:8] * 3), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize(), salt_octets


def _u32(value: int) -> bytes:
    return (value & 0xFFFFFFFF).to_bytes(4, "big")


# --- the whole message ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Parts:
    """One v3 message in pieces, each as a target may have mutated it.

    `usm_head` is the USM security parameters up to msgAuthenticationParameters (engine ID,
    boots, time, user name) and `usm_tail` what follows it (msgPrivacyParameters); the digest
    goes between them, in a field of `digest_length` octets, and is computed last.
    """

    user: User
    usm_head: bytes
    usm_tail: bytes
    scoped: bytes  # the plaintext scoped PDU, or the OCTET STRING of its ciphertext
    flags: int
    digest_length: int
    engine_id: bytes  # whose localised key signs it
    msg_id: int = 1
    max_size: int = 1500
    security_model: int = 3


def usm_head(engine_id: bytes, boots: int, time: int, user: bytes) -> bytes:
    return tlv(0x04, engine_id) + integer(boots) + integer(time) + tlv(0x04, user)


def build(parts: Parts) -> bytes:
    """The message's octets, with its digest computed over everything else in it."""
    field = header(0x04, parts.digest_length)
    usm_body = parts.usm_head + field + bytes(parts.digest_length) + parts.usm_tail
    usm = header(0x30, len(usm_body))
    params = header(0x04, len(usm) + len(usm_body))
    global_data = tlv(
        0x30,
        integer(parts.msg_id)
        + integer(parts.max_size)
        + tlv(0x04, bytes((parts.flags,)))
        + integer(parts.security_model),
    )
    lead = integer(3) + global_data
    body = lead + params + usm + usm_body + parts.scoped
    outer = header(0x30, len(body))
    message = bytearray(outer + body)
    if parts.flags & AUTH_NO_PRIV and parts.digest_length:
        at = len(outer) + len(lead) + len(params) + len(usm) + len(parts.usm_head) + len(field)
        hash_name, length = _AUTH[parts.user.auth]
        auth_key = keys(parts.user, parts.engine_id)[0]
        digest = hmac.new(auth_key, bytes(message), hash_name).digest()[:length]
        message[at : at + parts.digest_length] = digest[: parts.digest_length].ljust(
            parts.digest_length, b"\x00"
        )
    return bytes(message)


def valid_trap(user: User, engine_id: bytes, varbinds: bytes, *, boots: int = 1,
               time: int = 100, salt: int = 0) -> bytes:  # fmt: skip
    """An unmutated trap the receiver must deliver: the fuzz targets' starting point."""
    plain = scoped_pdu(trap_pdu(varbinds), context_engine_id=engine_id)
    return build(seal(user, engine_id, plain, boots=boots, time=time, salt=salt))


def seal(user: User, engine_id: bytes, plain: bytes, *, boots: int, time: int,
         salt: int) -> Parts:  # fmt: skip
    """The parts of a message carrying `plain` as its scoped PDU: encrypted if the user has
    privacy, from `engine_id`, for `build` to sign."""
    head = usm_head(engine_id, boots, time, user.name.encode())
    if user.priv is None:
        scoped, priv_params = plain, b""
    else:
        ciphertext, priv_params = encrypt(user, keys(user, engine_id)[1], boots, time, salt, plain)
        scoped = tlv(0x04, ciphertext)
    return Parts(user, head, tlv(0x04, priv_params), scoped, user.flags, user.digest_length,
                 engine_id)  # fmt: skip
