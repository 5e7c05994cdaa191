"""Signing: Ed25519 keys and detached signatures; tampering with data, descriptor or catalogue is caught."""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tiny_spec import write_primes_spec

from opendata.aggregate import hierarchy_codes
from opendata.catalog import write_catalog
from opendata.errors import OpenDataError
from opendata.package import write_package
from opendata.protection import ProtectedTable
from opendata.signing import (
    KeyFileError,
    SignatureError,
    SigningKey,
    fingerprint,
    generate_keys,
    load_private_key,
    load_public_key,
    sign_file,
    sign_package,
    verify_file,
)
from opendata.verify import VerificationFailed, verify_package, verify_tree

T0 = datetime(2024, 3, 14, 9, 30, tzinfo=UTC)
NOW = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[SigningKey, Path]:
    folder = tmp_path_factory.mktemp("keys")
    made = generate_keys(folder / "private.pem", folder / "public.pem")
    return load_private_key(made.private_path), made.public_path


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def unsigned_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real versions written by the package writer, not yet catalogued or signed."""
    base = tmp_path_factory.mktemp("signing")
    spec = write_primes_spec(base / "spec", "signed-mi", "Signed MI")
    provider = hierarchy_codes(spec.dimensions["provider"])
    for i, version in enumerate(["1.0.0", "1.1.0"]):
        frame = pd.DataFrame({"provider": list(provider.codes), "referrals": [60 + i, 30, 30 + i]})
        frame["referrals"] = frame["referrals"].astype("Int64")
        frame["referrals_status"] = ""
        audit = {"ok": True, "checked": 0, "method": "x"}
        table = ProtectedTable(
            spec=spec.tables[0],
            dimensions=(provider,),
            measures=(spec.measures["referrals"],),
            frame=frame,
            sdc={"referrals": {"cells": 3, "primary": 0, "secondary": 0, "rounded": 0, "audit": audit}},
        )
        write_package(spec, [table], base / "releases", version, T0 + timedelta(days=30 * i))
    return base / "releases"


@pytest.fixture
def tree(unsigned_tree: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(unsigned_tree, tmp_path / "releases"))


@pytest.fixture
def signed_tree(tree: Path, keys: tuple[SigningKey, Path]) -> Path:
    write_catalog(tree, signer=keys[0], now=NOW)
    return tree


# --- keys ------------------------------------------------------------------------------------


def test_generate_keys_pem_mode_and_refuses_overwrite(tmp_path: Path) -> None:
    made = generate_keys(tmp_path / "k" / "private.pem", tmp_path / "k" / "public.pem")
    assert stat.S_IMODE(made.private_path.stat().st_mode) == 0o600
    assert made.private_path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert made.public_path.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    private, public = load_private_key(made.private_path), load_public_key(made.public_path)
    assert fingerprint(private) == fingerprint(public) == made.fingerprint
    before = made.private_path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists; keys are never overwritten"):
        generate_keys(made.private_path, tmp_path / "new-public.pem")
    assert made.private_path.read_bytes() == before
    assert not (tmp_path / "new-public.pem").exists()  # refused before writing anything
    with pytest.raises(KeyFileError, match="already exists"):
        generate_keys(tmp_path / "new-private.pem", made.public_path)
    assert not (tmp_path / "new-private.pem").exists()
    assert issubclass(KeyFileError, OpenDataError)


def test_key_loading_errors(tmp_path: Path, keys: tuple[SigningKey, Path]) -> None:
    private, public_path = keys
    with pytest.raises(KeyFileError, match="does not exist"):
        load_private_key(tmp_path / "nope.pem")
    (tmp_path / "garbage.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyFileError, match="not a readable PEM private key"):
        load_private_key(tmp_path / "garbage.pem")
    with pytest.raises(KeyFileError, match="is a public key"):
        load_private_key(public_path)
    (tmp_path / "private.pem").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(KeyFileError, match="is a private key"):
        load_public_key(tmp_path / "private.pem")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ec.pem").write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(KeyFileError, match="Ed25519 key is needed"):
        load_private_key(tmp_path / "ec.pem")
    (tmp_path / "junk.pub").write_text("not a key\n")
    with pytest.raises(KeyFileError, match="not a readable Ed25519 public key"):
        load_public_key(tmp_path / "junk.pub")


def test_public_key_as_raw_base64_and_openssh(tmp_path: Path, keys: tuple[SigningKey, Path]) -> None:
    private, _ = keys
    public = private.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    (tmp_path / "raw.pub").write_text(base64.b64encode(raw).decode() + "\n")
    ssh = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    (tmp_path / "id.pub").write_bytes(ssh + b" publisher@example\n")
    for path in (tmp_path / "raw.pub", tmp_path / "id.pub"):
        assert fingerprint(load_public_key(path)) == fingerprint(private)


# --- files -----------------------------------------------------------------------------------


def test_sign_and_verify_file(tmp_path: Path, keys: tuple[SigningKey, Path], other_key: SigningKey) -> None:
    private, public_path = keys
    target = tmp_path / "notice.txt"
    target.write_bytes(b"released 09:30\n")
    sig = sign_file(target, private)
    assert sig == tmp_path / "notice.txt.sig"
    assert len(base64.b64decode(sig.read_text().strip())) == 64
    assert stat.S_IMODE(sig.stat().st_mode) == 0o644
    assert verify_file(target, public_path) == sig
    verify_file(target, load_public_key(public_path))
    first = sig.read_bytes()
    sign_file(target, private)
    assert sig.read_bytes() == first  # Ed25519 is deterministic: re-signing changes nothing

    with pytest.raises(SignatureError, match="signed by another key"):
        verify_file(target, other_key.public_key())
    target.write_bytes(b"released 09:31\n")
    with pytest.raises(SignatureError, match="changed after signing"):
        verify_file(target, public_path)
    sig.write_text("!!!\n")
    with pytest.raises(SignatureError, match="not base64"):
        verify_file(target, public_path)
    sig.unlink()
    with pytest.raises(SignatureError, match=r"not signed \(notice\.txt\.sig is missing\)"):
        verify_file(target, public_path)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_signature_verifies_with_openssl(tmp_path: Path, keys: tuple[SigningKey, Path]) -> None:
    private, public_path = keys
    target = tmp_path / "file.bin"
    target.write_bytes(b"exact bytes\n")
    sig = sign_file(target, private)
    (tmp_path / "sig.bin").write_bytes(base64.b64decode(sig.read_text()))
    command = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(public_path), "-rawin"]
    done = subprocess.run(
        [*command, "-in", str(target), "-sigfile", str(tmp_path / "sig.bin")],
        capture_output=True,
        text=True,
        check=False,
    )
    if "rawin" in done.stderr and done.returncode != 0:
        pytest.skip("this openssl cannot verify Ed25519 with -rawin")
    assert done.returncode == 0, done.stderr


# --- packages --------------------------------------------------------------------------------


def test_verify_package(tree: Path, keys: tuple[SigningKey, Path], other_key: SigningKey) -> None:
    private, public_path = keys
    version = tree / "signed-mi" / "1.0.0"
    with pytest.raises(SignatureError, match="not signed"):
        verify_package(version, public_path)
    sign_package(version, private)
    report = verify_package(version, public_path)
    assert report.ok and report.signatures == ["datapackage.json"] and report.versions == ["signed-mi 1.0.0"]
    assert report.files == 6  # csv, parquet, hierarchy, ods, xlsx, page: everything the descriptor hashes
    with pytest.raises(SignatureError, match="signed by another key"):
        verify_package(version, other_key.public_key())

    data = version / "data" / "provider-totals.csv"
    original = data.read_bytes()
    data.write_bytes(original.replace(b"61", b"99").replace(b"60", b"99"))
    with pytest.raises(VerificationFailed, match=r"data/provider-totals\.csv: hash sha256:") as caught:
        verify_package(version, public_path)
    assert not caught.value.report.ok
    data.write_bytes(original)

    descriptor = version / "datapackage.json"
    descriptor.write_text(descriptor.read_text().replace('"Signed MI"', '"Forged MI"'))
    with pytest.raises(VerificationFailed, match="changed after signing"):
        verify_package(version, public_path)


# --- trees -----------------------------------------------------------------------------------


def test_signed_tree_verifies(signed_tree: Path, keys: tuple[SigningKey, Path]) -> None:
    report = verify_tree(signed_tree, keys[1])
    assert report.ok
    assert report.versions == ["signed-mi 1.0.0", "signed-mi 1.1.0"]
    assert report.signatures == [
        "catalog.json",
        "signed-mi/1.0.0/datapackage.json",
        "signed-mi/1.1.0/datapackage.json",
    ]
    assert report.files == 18  # per version: README, descriptor and signature, csv, parquet, hierarchy, ods, xlsx, page
    assert report.to_dict()["key"] == fingerprint(keys[0])


def _same_size_edit(data: bytes) -> bytes:
    return data.replace(b"30", b"31", 1)


def _append(data: bytes) -> bytes:
    return data + b" "


@pytest.mark.parametrize(
    ("victim", "change", "message"),
    [
        (
            "signed-mi/1.1.0/data/provider-totals.csv",
            _same_size_edit,
            r"1\.1\.0/data/provider-totals\.csv: sha256 \w+, catalog\.json says",
        ),
        (
            "signed-mi/1.1.0/data/provider-totals.csv",
            _append,
            r"1\.1\.0/data/provider-totals\.csv: 41 bytes, catalog\.json says 40",
        ),
        ("signed-mi/1.0.0/README.md", _append, r"signed-mi/1\.0\.0/README\.md: \d+ bytes, catalog\.json says"),
        ("signed-mi/1.0.0/datapackage.json", _append, r"1\.0\.0/datapackage\.json: signature does not verify"),
    ],
)
def test_tampering_is_detected(
    signed_tree: Path, keys: tuple[SigningKey, Path], victim: str, change, message: str
) -> None:
    path = signed_tree / victim
    changed = change(path.read_bytes())
    assert changed != path.read_bytes()
    path.write_bytes(changed)
    with pytest.raises(VerificationFailed, match=message) as caught:
        verify_tree(signed_tree, keys[1])
    assert caught.value.report.problems  # every problem is named, not just the first


def test_missing_file_is_detected(signed_tree: Path, keys: tuple[SigningKey, Path]) -> None:
    (signed_tree / "signed-mi" / "1.1.0" / "hierarchies" / "provider.csv").unlink()
    with pytest.raises(VerificationFailed, match=r"signed-mi/1\.1\.0/hierarchies/provider\.csv: missing"):
        verify_tree(signed_tree, keys[1])


def test_tampered_catalogue_is_refused(signed_tree: Path, keys: tuple[SigningKey, Path]) -> None:
    catalog = signed_tree / "catalog.json"
    catalog.write_text(catalog.read_text().replace('"latest": "1.1.0"', '"latest": "1.0.0"'))
    with pytest.raises(SignatureError, match=r"catalog\.json: signature does not verify"):
        verify_tree(signed_tree, keys[1])


def test_catalogue_signed_by_another_key_is_refused(
    tree: Path, keys: tuple[SigningKey, Path], other_key: SigningKey
) -> None:
    write_catalog(tree, signer=other_key, now=NOW)
    with pytest.raises(SignatureError, match="signed by another key"):
        verify_tree(tree, keys[1])
    verify_tree(tree, other_key.public_key())


def test_unsigned_tree_is_refused(tree: Path, keys: tuple[SigningKey, Path]) -> None:
    with pytest.raises(SignatureError, match=r"has no catalog\.json"):
        verify_tree(tree, keys[1])
    write_catalog(tree, now=NOW)
    with pytest.raises(SignatureError, match=r"catalog\.json: not signed"):
        verify_tree(tree, keys[1])


def test_write_catalog_never_replaces_a_signature(
    signed_tree: Path, keys: tuple[SigningKey, Path], other_key: SigningKey
) -> None:
    sig = signed_tree / "signed-mi" / "1.0.0" / "datapackage.json.sig"
    before, mtime = sig.read_bytes(), sig.stat().st_mtime_ns
    result = write_catalog(signed_tree, signer=keys[0], now=NOW)
    assert result.signed == ()
    assert (sig.read_bytes(), sig.stat().st_mtime_ns) == (before, mtime)
    catalog_before = (signed_tree / "catalog.json").read_bytes()
    with pytest.raises(SignatureError, match="published signatures are never replaced"):
        write_catalog(signed_tree, signer=other_key, now=NOW)
    assert sig.read_bytes() == before
    assert (signed_tree / "catalog.json").read_bytes() == catalog_before


def test_new_version_gets_signed_and_listed(signed_tree: Path, keys: tuple[SigningKey, Path]) -> None:
    shutil.copytree(signed_tree / "signed-mi" / "1.1.0", signed_tree / "signed-mi" / "1.2.0")
    with pytest.raises(Exception, match=r"describes signed-mi 1\.1\.0"):
        write_catalog(signed_tree, signer=keys[0], now=NOW)  # a copied version is not a release
    shutil.rmtree(signed_tree / "signed-mi" / "1.2.0")
    (signed_tree / "signed-mi" / "1.1.0" / "datapackage.json.sig").unlink()
    result = write_catalog(signed_tree, signer=keys[0], now=NOW)
    assert result.signed == (signed_tree / "signed-mi" / "1.1.0" / "datapackage.json.sig",)
    assert verify_tree(signed_tree, keys[1]).ok
