"""Bundled-model assembly on tiny fake chunk packages: verified once, stamped, rebuilt when
damaged, and never a half-written or wrong file under the final name."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tomllib
from pathlib import Path

import pytest

from strata.core import catalog
from strata.core.catalog import BundledModel
from strata.core.errors import CatalogError

ROOT = Path(__file__).resolve().parents[2]
PIECES = [b"GGUF" + b"a" * 1000, b"b" * 2048, b"c" * 10]
WHOLE = b"".join(PIECES)
_packages = itertools.count()


def make_model(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pieces: list[bytes] = PIECES,
    sha256: str | None = None,
) -> BundledModel:
    """Write one importable package per chunk under tmp_path and a model made of them."""
    site = tmp_path / "site"
    prefix = f"strata_test_chunks_{next(_packages)}_part"  # fresh names: no import caching
    chunks = []
    for i, data in enumerate(pieces, start=1):
        package = site / f"{prefix}{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{i:02d}.bin").write_bytes(data)
        chunks.append((f"{prefix}{i}", f"data/part{i:02d}.bin"))
    monkeypatch.syspath_prepend(str(site))
    return BundledModel(
        name="tiny",
        filename="tiny.gguf",
        sha256=sha256 or hashlib.sha256(b"".join(pieces)).hexdigest(),
        extra="models-tiny",
        chunks=tuple(chunks),
    )


class Recorder:
    def __init__(self) -> None:
        self.bytes = 0
        self.phases: list[tuple[str, int]] = []

    def progress(self, n: int) -> None:
        self.bytes += n

    def phase(self, label: str, total: int) -> None:
        self.phases.append((label, total))


def assemble(model: BundledModel, home: Path) -> tuple[Path, Recorder]:
    rec = Recorder()
    path = catalog.assemble(model, home, progress=rec.progress, on_phase=rec.phase)
    return path, rec


def test_assembles_with_sha_and_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(tmp_path, monkeypatch)
    home = tmp_path / "home"
    assert not catalog.is_ready(model, home)
    assert model.size() == len(WHOLE)
    path, rec = assemble(model, home)
    assert path == home / "models" / "tiny.gguf"
    assert path.read_bytes() == WHOLE
    assert catalog.sha256_file(path) == model.sha256
    assert rec.bytes == len(WHOLE)
    assert rec.phases == [("assembling tiny", len(WHOLE))]
    assert catalog.is_ready(model, home)
    stamp = json.loads((path.parent / "tiny.gguf.stamp.json").read_text())
    assert stamp == {
        "size": len(WHOLE),
        "mtime_ns": path.stat().st_mtime_ns,
        "sha256": model.sha256,
    }
    assert not (path.parent / "tiny.gguf.partial").exists()


def test_second_call_does_not_rehash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(tmp_path, monkeypatch)
    home = tmp_path / "home"
    first, _ = assemble(model, home)
    mtime = first.stat().st_mtime_ns

    def no_hashing(*args: object, **kwargs: object) -> str:
        raise AssertionError("hashed again")

    monkeypatch.setattr(catalog, "sha256_file", no_hashing)
    monkeypatch.setattr(BundledModel, "chunk_paths", no_hashing)
    second, rec = assemble(model, home)
    assert second == first
    assert rec.bytes == 0 and rec.phases == []
    assert first.stat().st_mtime_ns == mtime


def test_missing_stamp_verifies_without_rebuilding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model(tmp_path, monkeypatch)
    home = tmp_path / "home"
    path, _ = assemble(model, home)
    (path.parent / "tiny.gguf.stamp.json").unlink()
    inode = path.stat().st_ino
    path2, rec = assemble(model, home)
    assert rec.phases == [("verifying tiny", len(WHOLE))]
    assert rec.bytes == len(WHOLE)
    assert path2.stat().st_ino == inode  # the same file, kept
    assert catalog.is_ready(model, home)


@pytest.mark.parametrize("keep_size", [True, False])
def test_corrupted_file_is_detected_and_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_size: bool
) -> None:
    model = make_model(tmp_path, monkeypatch)
    home = tmp_path / "home"
    path, _ = assemble(model, home)
    with path.open("r+b") as f:
        f.seek(100)
        f.write(b"\x00" * 16)
        if not keep_size:
            f.truncate(500)
    # Make sure the change is visible even on coarse-mtime filesystems.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert not catalog.is_ready(model, home)
    rebuilt, rec = assemble(model, home)
    assert rebuilt.read_bytes() == WHOLE
    labels = [label for label, _ in rec.phases]
    assert labels == ["verifying tiny", "assembling tiny"]
    assert catalog.is_ready(model, home)


def test_leftover_partial_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(tmp_path, monkeypatch)
    home = tmp_path / "home"
    partial = home / "models" / "tiny.gguf.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(WHOLE[:1500])  # an interrupted earlier run
    assert not catalog.is_ready(model, home)
    path, rec = assemble(model, home)
    assert path.read_bytes() == WHOLE
    assert rec.phases == [("assembling tiny", len(WHOLE))]  # built from the chunks
    assert not partial.exists()


def test_complete_partial_is_still_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model(tmp_path, monkeypatch)
    home = tmp_path / "home"
    partial = home / "models" / "tiny.gguf.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(WHOLE)
    assert not catalog.is_ready(model, home)
    _, rec = assemble(model, home)
    assert rec.bytes == len(WHOLE)  # read from the chunk packages, not renamed
    assert not partial.exists()


def test_wrong_sha_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(tmp_path, monkeypatch, sha256="0" * 64)
    home = tmp_path / "home"
    with pytest.raises(CatalogError) as info:
        assemble(model, home)
    message = info.value.message
    assert "0" * 64 in message
    assert hashlib.sha256(WHOLE).hexdigest() in message
    assert "pip install --force-reinstall 'strata[models-tiny]'" in message
    models = home / "models"
    assert not (models / "tiny.gguf").exists()
    assert not (models / "tiny.gguf.partial").exists()
    assert not (models / "tiny.gguf.stamp.json").exists()
    assert not catalog.is_ready(model, home)


def test_wrong_sha_after_corruption_removes_the_bad_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged final file whose chunks are damaged too: neither survives."""
    model = make_model(tmp_path, monkeypatch, sha256="0" * 64)
    home = tmp_path / "home"
    target = home / "models" / "tiny.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"junk")
    with pytest.raises(CatalogError):
        assemble(model, home)
    assert not target.exists()


def test_missing_package_names_the_extra(tmp_path: Path) -> None:
    model = BundledModel(
        name="ghost",
        filename="ghost.gguf",
        sha256="0" * 64,
        extra="models-ghost",
        chunks=(("strata_no_such_chunk_package_xyz", "data/part01.bin"),),
    )
    with pytest.raises(CatalogError) as info:
        catalog.assemble(model, tmp_path / "home")
    assert "strata_no_such_chunk_package_xyz" in info.value.message
    assert "pip install 'strata[models-ghost]'" in info.value.message
    assert not (tmp_path / "home" / "models" / "ghost.gguf").exists()


def test_missing_chunk_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(tmp_path, monkeypatch)
    package, inner = model.chunks[1]
    (tmp_path / "site" / package / inner).unlink()
    with pytest.raises(CatalogError, match="missing chunks"):
        catalog.assemble(model, tmp_path / "home")


def test_lookup() -> None:
    assert catalog.lookup("gemma-3-270m").filename == catalog.GEMMA
    with pytest.raises(CatalogError, match="no bundled model 'nope'"):
        catalog.lookup("nope")


def test_catalog_matches_pyproject_extras() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for model in catalog.CATALOG.values():
        assert len(model.sha256) == 64 and int(model.sha256, 16) >= 0
        assert model.extra in extras, model.extra
        assert model.filename.endswith(".gguf")
        assert model.chunks
    # The default model specs name only catalog entries.
    from strata.core.settings import default_models

    for spec in default_models().values():
        if spec.backend == "llama":  # minilm ships as a package, not a catalog file
            assert spec.bundled in catalog.CATALOG
