"""Ed25519 signatures, so a host can prove a release came from the publisher and was not altered.

What is signed, and why that is enough:

- a version is signed by signing its ``datapackage.json``, which records the size and SHA-256 of
  every data and hierarchy file, so one signature covers the whole package;
- the release tree is signed by signing ``catalog.json``, which records the size and SHA-256 of every
  file of every listed version (descriptor, signatures and README included).

A signature is detached: ``<file>.sig`` holds the base64 of the 64-byte Ed25519 signature over the
file's exact bytes, so anyone can check it with any Ed25519 tool, e.g.
``base64 -d f.sig > f.bin && openssl pkeyutl -verify -pubin -inkey public.pem -rawin -in f -sigfile f.bin``.
Keys are PEM files (PKCS#8 private, SubjectPublicKeyInfo public); a public key may also be given as the
base64 of its 32 raw bytes. Ed25519 signatures are deterministic, so re-signing identical bytes with the
same key gives an identical ``.sig``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from opendata.descriptor import DESCRIPTOR_FILE, SIGNATURE_SUFFIX
from opendata.errors import OpenDataError

SigningKey = Ed25519PrivateKey
PublicKey = Ed25519PublicKey

SIGNATURE_BYTES = 64
RAW_KEY_BYTES = 32
MAX_KEY_FILE_BYTES = 64 * 1024


class KeyFileError(OpenDataError):
    """A key file is missing, corrupt, of the wrong kind, or would be overwritten."""


class SignatureError(OpenDataError):
    """A signature is missing or does not verify, or a signed file does not match what it claims."""


@dataclass(frozen=True)
class GeneratedKeys:
    """Where a new key pair was written, and the fingerprint to publish next to the public key."""

    private_path: Path
    public_path: Path
    fingerprint: str


# --- keys ------------------------------------------------------------------------------------


def fingerprint(key: PublicKey | SigningKey) -> str:
    """``SHA256:<base64>`` of the raw public key, as OpenSSH spells it, to say which key was used."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode("ascii").rstrip("=")


def generate_keys(private_path: str | Path, public_path: str | Path) -> GeneratedKeys:
    """Write a new Ed25519 key pair as PEM; the private file is mode 0600.

    Refuses, before writing anything, if either file exists: overwriting a signing key would make
    every published signature unverifiable with the key hosts already trust.
    """
    private_path, public_path = Path(private_path), Path(public_path)
    if private_path.resolve() == public_path.resolve():
        raise KeyFileError(f"the private and public key cannot both be written to {private_path}")
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise KeyFileError(
                f"{path} already exists; keys are never overwritten (move it away or choose another path)"
            )
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    written: list[Path] = []
    try:
        for path, data, mode in ((private_path, private_pem, 0o600), (public_path, public_pem, 0o644)):
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_new(path, data, mode)
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return GeneratedKeys(private_path, public_path, fingerprint(key))


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create exclusively (so a file that appeared meanwhile is not clobbered) with the mode set from the start."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; keys are never overwritten") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits we want; never adds any beyond `mode`
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"{path} is too large to be an Ed25519 {what} key")
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{what} key {path} does not exist") from None
    except IsADirectoryError:
        raise KeyFileError(f"{what} key {path} is a directory, not a key file") from None
    except PermissionError:
        raise KeyFileError(f"{what} key {path} cannot be read (permission denied)") from None


def load_private_key(path: str | Path, password: bytes | None = None) -> SigningKey:
    """Read a PEM (PKCS#8 or OpenSSH) Ed25519 private key, with a message that says what is wrong."""
    path = Path(path)
    data = _read_key_file(path, "private")
    if b"PUBLIC KEY" in data:
        raise KeyFileError(f"{path} is a public key; signing needs the private key")
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password)
        else:
            key = serialization.load_pem_private_key(data, password)
    except TypeError as exc:  # password given but not needed, or needed but not given
        raise KeyFileError(f"{path}: {exc}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(f"{path} is not a readable PEM private key (corrupt, wrong password or not a key)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(
            f"{path} holds a {type(key).__name__.removesuffix('PrivateKey')} key; an Ed25519 key is needed"
        )
    return key


def load_public_key(path: str | Path) -> PublicKey:
    """Read an Ed25519 public key: PEM, OpenSSH ``ssh-ed25519 ...`` or the base64 of its 32 raw bytes."""
    path = Path(path)
    data = _read_key_file(path, "public")
    if b"PRIVATE KEY" in data:
        raise KeyFileError(f"{path} is a private key; give hosts and `verify` the public key only")
    return parse_public_key(data, str(path))


def parse_public_key(data: bytes, where: str) -> PublicKey:
    """An Ed25519 public key from its text (as ``load_public_key`` reads it); ``where`` names it in errors."""
    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
        elif text.startswith(b"ssh-"):
            key = serialization.load_ssh_public_key(text)
        else:
            raw = base64.b64decode(text, validate=True)
            if len(raw) != RAW_KEY_BYTES:
                raise ValueError(f"{len(raw)} bytes")
            key = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        raise KeyFileError(
            f"{where} is not a readable Ed25519 public key (expected PEM, ssh-ed25519 or 32 base64-encoded bytes)"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(
            f"{where} holds a {type(key).__name__.removesuffix('PublicKey')} key; an Ed25519 key is needed"
        )
    return key


def public_key(key: PublicKey | SigningKey | str | Path) -> PublicKey:
    """Accept a key object, the signer itself, or a public key file, so callers need not load it first."""
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    if isinstance(key, Ed25519PublicKey):
        return key
    return load_public_key(key)


# --- files -----------------------------------------------------------------------------------


def signature_path(path: str | Path) -> Path:
    """Where the detached signature of ``path`` lives."""
    path = Path(path)
    return path.with_name(path.name + SIGNATURE_SUFFIX)


def signature_text(data: bytes, key: SigningKey) -> str:
    """The exact content of a ``.sig`` file for ``data``: one base64 line."""
    return base64.b64encode(key.sign(data)).decode("ascii") + "\n"


def sign_file(path: str | Path, key: SigningKey) -> Path:
    """Write ``<path>.sig`` over the file's exact bytes (atomically) and return its path."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SignatureError(f"cannot sign {path}: {exc.strerror}") from None
    target = signature_path(path)
    write_atomic(target, signature_text(data, key).encode("ascii"))
    return target


def verify_bytes(data: bytes, signature_file: Path, key: PublicKey | SigningKey | str | Path, *, name: str) -> None:
    """Check ``data`` against a ``.sig`` file; ``name`` is what the error message calls the signed file."""
    try:
        text = signature_file.read_bytes()
    except FileNotFoundError:
        raise SignatureError(f"{name}: not signed ({signature_file.name} is missing)") from None
    except OSError as exc:
        raise SignatureError(f"{name}: cannot read {signature_file.name}: {exc.strerror}") from None
    verify_signature(data, text, key, name=name, signature_name=signature_file.name)


def verify_signature(
    data: bytes, text: bytes, key: PublicKey | SigningKey | str | Path, *, name: str, signature_name: str
) -> None:
    """Check ``data`` against the content of a ``.sig`` file (e.g. as fetched over HTTP)."""
    public = public_key(key)
    try:
        signature = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{name}: {signature_name} is not base64 text") from None
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError(f"{name}: {signature_name} holds {len(signature)} bytes, not an Ed25519 signature")
    try:
        public.verify(signature, data)
    except InvalidSignature:
        raise SignatureError(
            f"{name}: signature does not verify with key {fingerprint(public)} "
            "(the file was changed after signing, or it was signed by another key)"
        ) from None


def verify_file(path: str | Path, public_key: PublicKey | SigningKey | str | Path) -> Path:
    """Raise SignatureError unless ``<path>.sig`` is a valid signature of the file by this key; return the .sig path."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SignatureError(f"{path}: missing") from None
    except OSError as exc:
        raise SignatureError(f"{path}: cannot read: {exc.strerror}") from None
    target = signature_path(path)
    verify_bytes(data, target, public_key, name=str(path))
    return target


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Replace ``path`` with ``data`` via a temporary file and os.replace; skip if already identical.

    Skipping keeps modification times (and HTTP caches of mirrors) unchanged when nothing changed.
    Returns whether the file was written.
    """
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)  # mkstemp makes 0600; published files must be readable
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


# --- packages and trees ----------------------------------------------------------------------


def sign_package(version_dir: str | Path, key: SigningKey) -> Path:
    """Sign one version: its ``datapackage.json`` names every file's hash, so this covers the package."""
    return sign_file(Path(version_dir) / DESCRIPTOR_FILE, key)
