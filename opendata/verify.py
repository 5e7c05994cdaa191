"""Verification of published trees and packages against the publisher's public key: the host's and
the researcher's side of ``opendata.signing`` (which holds the keys and signature primitives, and
which the catalogue writer uses to sign, so verification lives here, above both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from opendata.catalog import CatalogVersion, read_catalog
from opendata.descriptor import CATALOG_FILE, DESCRIPTOR_FILE, FileInfo, PackageInfo
from opendata.digest import file_digest
from opendata.errors import ReleaseError
from opendata.signing import (
    PublicKey,
    SignatureError,
    SigningKey,
    fingerprint,
    public_key,
    signature_path,
    verify_bytes,
    verify_file,
)

MAX_PROBLEMS_IN_MESSAGE = 20


class VerificationFailed(SignatureError):
    """Verification found problems; carries every one of them and the report of what was checked."""

    def __init__(self, report: VerificationReport):
        self.report = report
        shown = report.problems[:MAX_PROBLEMS_IN_MESSAGE]
        more = len(report.problems) - len(shown)
        lines = [f"{len(report.problems)} problem(s) verifying {report.target}:", *(f"  {p}" for p in shown)]
        if more:
            lines.append(f"  ... and {more} more")
        super().__init__("\n".join(lines))


@dataclass
class VerificationReport:
    """What a verification looked at, so a host can log what it trusted and why."""

    target: Path
    key_fingerprint: str
    signatures: list[str] = field(default_factory=list)  # files whose signature verified
    versions: list[str] = field(default_factory=list)  # "name version" checked
    files: int = 0  # files whose size and hash were compared
    bytes: int = 0
    problems: list[str] = field(default_factory=list)  # "path: why"

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> VerificationReport:
        """Return self if everything verified, else raise VerificationFailed naming every problem."""
        if self.problems:
            raise VerificationFailed(self)
        return self

    def to_dict(self) -> dict:
        return {
            "target": str(self.target),
            "key": self.key_fingerprint,
            "ok": self.ok,
            "signatures": list(self.signatures),
            "versions": list(self.versions),
            "files": self.files,
            "bytes": self.bytes,
            "problems": list(self.problems),
        }


def verify_package(version_dir: str | Path, key: PublicKey | SigningKey | str | Path) -> VerificationReport:
    """Check the descriptor's signature and every file's size and hash; raise VerificationFailed naming each problem."""
    version_dir = Path(version_dir)
    if version_dir.name == DESCRIPTOR_FILE:
        version_dir = version_dir.parent
    public = public_key(key)
    report = VerificationReport(version_dir, fingerprint(public))
    descriptor = version_dir / DESCRIPTOR_FILE
    try:
        verify_file(descriptor, public)
        report.signatures.append(DESCRIPTOR_FILE)
    except SignatureError as exc:
        report.problems.append(str(exc))
        return report.raise_for_problems()  # an unauthenticated descriptor vouches for nothing
    try:
        info = PackageInfo.read(version_dir)
    except ReleaseError as exc:
        report.problems.append(str(exc))
        return report.raise_for_problems()
    report.versions.append(f"{info.name} {info.version}")
    report.problems += [f"{version_dir.as_posix()}/{p}" for p in info.verify()]
    report.files = len(info.files)
    report.bytes = sum(f.bytes for f in info.files)
    return report.raise_for_problems()


def verify_tree(root: str | Path, key: PublicKey | SigningKey | str | Path) -> VerificationReport:
    """Check ``catalog.json.sig``, then every listed version's descriptor signature and every listed file.

    Stops at once if the catalogue itself does not verify (nothing it lists can be trusted);
    otherwise collects every problem and raises VerificationFailed naming each file and why.
    """
    root = Path(root)
    public = public_key(key)
    report = VerificationReport(root, fingerprint(public))
    catalog_path = root / CATALOG_FILE
    try:
        data = catalog_path.read_bytes()
    except FileNotFoundError:
        raise SignatureError(f"{root} has no {CATALOG_FILE}; run the catalogue writer (publish) first") from None
    verify_bytes(data, signature_path(catalog_path), public, name=CATALOG_FILE)
    report.signatures.append(CATALOG_FILE)
    try:
        catalog = read_catalog(data, source_name=catalog_path)
    except ReleaseError as exc:
        raise SignatureError(f"{CATALOG_FILE} is signed but unreadable: {exc}") from None

    for f in catalog.changelogs:
        report.files += 1
        report.bytes += f.bytes
        if problem := _check_listed(root, f.path, f.bytes, f.sha256):
            report.problems.append(problem)
    for version in catalog.versions:
        report.versions.append(f"{version.name} {version.version}")
        listed = {f.path: f for f in version.files}
        for f in version.files:
            problem = _check_listed(root, f.path, f.bytes, f.sha256)
            report.files += 1
            report.bytes += f.bytes
            if problem:
                report.problems.append(problem)
        descriptor_path = root / version.descriptor.path
        try:
            descriptor_bytes = descriptor_path.read_bytes()
            verify_bytes(descriptor_bytes, signature_path(descriptor_path), public, name=version.descriptor.path)
            report.signatures.append(version.descriptor.path)
        except FileNotFoundError:
            continue  # already reported as a missing listed file
        except SignatureError as exc:
            report.problems.append(str(exc))
            continue
        problems = _descriptor_agrees(version, descriptor_bytes, listed)
        report.problems += problems
    return report.raise_for_problems()


def _descriptor_agrees(version: CatalogVersion, descriptor_bytes: bytes, listed: dict[str, FileInfo]) -> list[str]:
    """The signed descriptor and the signed catalogue must describe the same files the same way."""
    where = version.descriptor.path
    try:
        descriptor = json.loads(descriptor_bytes)
        name, number = descriptor["name"], descriptor["version"]
        resources = [r for r in descriptor.get("resources", []) if "hash" in r]
    except (ValueError, KeyError, TypeError):
        return [f"{where}: not a readable data package descriptor"]
    problems = []
    if (name, number) != (version.name, version.version):
        problems.append(f"{where}: describes {name} {number}, catalogue lists it as {version.name} {version.version}")
    base = PurePosixPath(version.path)
    for r in resources:
        path = (base / str(r.get("path", ""))).as_posix()
        entry = listed.get(path)
        if entry is None:
            problems.append(f"{path}: in the descriptor but not listed in {CATALOG_FILE}")
        elif (entry.bytes, entry.hash) != (r.get("bytes"), r.get("hash")):
            problems.append(f"{path}: {CATALOG_FILE} and {DESCRIPTOR_FILE} disagree on its size or hash")
    return problems


def _check_listed(root: Path, path: str, size: int, sha256: str) -> str | None:
    target = root / path
    if not target.is_file():
        return f"{path}: missing"
    actual, digest = file_digest(target)
    if actual != size:
        return f"{path}: {actual} bytes, {CATALOG_FILE} says {size}"
    if digest != sha256:
        return f"{path}: sha256 {digest}, {CATALOG_FILE} says {sha256}"
    return None
