"""Hostile model directories before signing: paths leaving the directory, special files, huge files,
decompression bombs and the pickle scanner bypass shapes of ``../shared/reference/peers.md`` and
``signing-and-encryption.md`` §3. Each is refused (``ModelPathError`` / ``UnsafeModelError``, nothing
signed) or flagged by the scan, and nothing hangs."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeshield.errors import ModelPathError, UnsafeModelError
from pipeshield.keys import KeyType, LocalKeyProvider
from pipeshield.scan import ScanPolicy, scan_files
from pipeshield.signing import RESERVED_FILES, ModelBindings, sign_model

BINDINGS = ModelBindings(name="hostile")


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> LocalKeyProvider:
    provider = LocalKeyProvider(tmp_path_factory.mktemp("hostile-keyring"), os.urandom(32))
    provider.create_key("sig", KeyType.ECDSA_P256)
    return provider


def _model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "weights.json").write_text('{"coef": [1.0]}\n')
    return model


def _refused(model: Path, signer: LocalKeyProvider, error: type[Exception], match: str,
             policy: ScanPolicy | None = None) -> Exception:
    with pytest.raises(error, match=match) as caught:
        sign_model(model, signer, "sig", BINDINGS, scan_policy=policy)
    assert not any((model / name).exists() for name in RESERVED_FILES)  # nothing signed
    return caught.value


# --- paths --------------------------------------------------------------------------------------


def _outside_dir_link(model: Path) -> None:
    (model.parent / "elsewhere").mkdir()
    (model.parent / "elsewhere" / "secrets.txt").write_text("outside")
    (model / "data").symlink_to(model.parent / "elsewhere", target_is_directory=True)


def _chain(model: Path) -> None:
    (model.parent / "outside.txt").write_text("outside")
    (model / "hop").symlink_to(model.parent / "outside.txt")
    (model / "alias.json").symlink_to("hop")  # a link to a link (inside) that leaves


def _absolute(model: Path) -> None:
    (model / "passwd").symlink_to("/etc/passwd")


def _loop(model: Path) -> None:
    (model / "a").symlink_to("b")
    (model / "b").symlink_to("a")


def _dangling(model: Path) -> None:
    (model / "gone.bin").symlink_to("does-not-exist")


def _fifo(model: Path) -> None:
    os.mkfifo(model / "weights.pipe")  # hashing it would block forever


def _newline_name(model: Path) -> None:
    (model / "evil\nname.json").write_text("{}")


def _backslash_traversal(model: Path) -> None:
    (model / "..\\..\\etc\\cron.d\\job").write_text("* * * * * root sh\n")


def _undecodable_name(model: Path) -> None:
    with open(os.fsencode(model) + b"/weights-\xff.bin", "wb") as handle:
        handle.write(b"x")


PATH_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "symlinked directory leaving the model dir": (_outside_dir_link, "outside the model directory"),
    "symlink chain leaving the model dir": (_chain, "outside the model directory"),
    "absolute symlink to /etc/passwd": (_absolute, "outside the model directory"),
    "symlink loop": (_loop, "symlink"),
    "dangling symlink": (_dangling, "only links to regular files"),
    "FIFO in the model dir": (_fifo, "not a regular file"),
    "newline in a file name": (_newline_name, "not a plain relative name"),
    "backslash traversal name": (_backslash_traversal, "not a plain relative name"),
    "undecodable (non-UTF-8) file name": (_undecodable_name, "not a plain relative name"),
}


@pytest.mark.reliability("hostile input", "model dir path", "ModelPathError naming the path; nothing signed; no hang")
@pytest.mark.parametrize("case", list(PATH_CASES))
def test_hostile_paths_are_refused(case: str, tmp_path: Path, signer: LocalKeyProvider, reliability) -> None:
    make, match = PATH_CASES[case]
    model = _model(tmp_path)
    make(model)
    error = _refused(model, signer, ModelPathError, match)
    reliability(observed=f"{type(error).__name__}: {error}")


# --- huge files and decompression bombs ------------------------------------------------------------


def _pickle_ops_stream(write: Callable[[bytes], object], size: int) -> None:
    """A valid pickle that is ``size`` bytes of NONE/POP pairs: tiny when compressed, slow to disassemble."""
    write(b"\x80\x04")
    block = b"N0" * (1 << 19)
    for _ in range(size // len(block)):
        write(block)
    write(b"N.")


@pytest.mark.reliability("hostile input", "huge (9 GiB sparse) pickle in a model dir",
                         "refused by the scan's size budget before anything is read or signed")
def test_huge_sparse_pickle_is_refused_unread(tmp_path: Path, signer: LocalKeyProvider, reliability) -> None:
    model = _model(tmp_path)
    with open(model / "model.pkl", "wb") as handle:
        handle.truncate(9 << 30)  # sparse: no disk used
    error = _refused(model, signer, UnsafeModelError, "over the scan budget")
    reliability(observed=f"{type(error).__name__}: {error}")


BOMB = 200 << 20  # bytes of pickle opcodes behind a ~0.2 MB compressed file


def _zip_bomb(model: Path) -> None:
    with zipfile.ZipFile(model / "model.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("data.pkl", "w") as entry:
            _pickle_ops_stream(entry.write, BOMB)


def _gzip_bomb(model: Path) -> None:
    with gzip.open(model / "model.pkl.gz", "wb", compresslevel=1) as stream:
        _pickle_ops_stream(stream.write, BOMB)


@pytest.mark.reliability("hostile input", "decompression bomb inside a model dir",
                         "the streaming scan runs into its time budget: refused, memory bounded, no hang")
@pytest.mark.parametrize("make", [_zip_bomb, _gzip_bomb], ids=["zip", "gzip"])
def test_decompression_bombs_hit_the_scan_budget(make: Callable[[Path], None], tmp_path: Path,
                                                 signer: LocalKeyProvider, reliability) -> None:
    model = _model(tmp_path)
    make(model)
    packed = sum(p.stat().st_size for p in model.iterdir())
    error = _refused(model, signer, UnsafeModelError, "scan did not finish within 1 s",
                     ScanPolicy(timeout_seconds=1.0))
    reliability(observed=f"{packed:,} bytes on disk expanding to {BOMB:,}: {error}")


@pytest.mark.reliability("hostile input", "gzip bomb of non-pickle data (data.csv.gz) in a model dir",
                         "never decompressed (only its first bytes are read): signed as an opaque file")
def test_non_pickle_bomb_is_never_expanded(tmp_path: Path, signer: LocalKeyProvider, reliability) -> None:
    model = _model(tmp_path)
    with gzip.open(model / "data.csv.gz", "wb", compresslevel=1) as stream:
        stream.write(b"a,b\n")
        for _ in range(16):
            stream.write(bytes(16 << 20))  # 256 MiB of zeros
    report = scan_files({"data.csv.gz": model / "data.csv.gz"})
    assert report.ok and report.scanned == ("data.csv.gz",)
    signed = sign_model(model, signer, "sig", BINDINGS, scan_policy=ScanPolicy(timeout_seconds=5.0))
    assert "data.csv.gz" in signed.files
    assert signed.total_bytes < 10 << 20  # hashed as the compressed bytes it is
    reliability(observed=f"scanned (head only), signed {signed.total_bytes:,} bytes")


# --- pickle scanner bypass shapes ---------------------------------------------------------------------


def _calls(module: str, name: str, *args: str) -> bytes:
    """A protocol-2 pickle that imports ``module.name`` and calls it with string ``args`` (never loaded here)."""
    out = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n("
    for arg in args:
        out += b"X" + len(arg.encode()).to_bytes(4, "little") + arg.encode()
    return out + b"tR."


# globals public scanner bypasses use (peers.md, signing-and-encryption.md §3)
BYPASS_GLOBALS = [
    ("operator", "methodcaller"), ("functools", "partial"), ("atexit", "register"), ("threading", "Thread"),
    ("importlib", "import_module"), ("inspect", "getattr_static"), ("pkgutil", "resolve_name"),
    ("builtins", "getattr"), ("builtins", "__import__"), ("runpy", "_run_code"), ("code", "InteractiveInterpreter"),
    ("_operator", "attrgetter"), ("ctypes", "CDLL"), ("pydoc", "locate"), ("webbrowser", "open"),
]


@pytest.mark.reliability("hostile input", "scanner bypass global in a pickle",
                         "flagged: dangerous or not on the allow-list")
@pytest.mark.parametrize(("module", "name"), BYPASS_GLOBALS, ids=[f"{m}.{n}" for m, n in BYPASS_GLOBALS])
def test_bypass_globals_are_flagged(module: str, name: str, tmp_path: Path, reliability) -> None:
    path = tmp_path / "weights.safetensors"  # a harmless-looking name: found by its magic bytes
    path.write_bytes(_calls(module, name, "os"))
    report = scan_files({"weights.safetensors": path})
    assert not report.ok and f"{module}.{name}" in report.findings[0], report
    reliability(observed=report.findings[0])


def _evil() -> bytes:
    return _calls("os", "system", "echo pwned")


def _zip_with(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, data)
    return out.getvalue()


CONTAINER_CASES: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "gzip-compressed pickle (joblib opens it)": ("model.pkl.gz", lambda: gzip.compress(_evil()), "posix.system|os.system"),
    "bzip2-compressed pickle": ("model.joblib.bz2", lambda: bz2.compress(_evil()), "posix.system|os.system"),
    "xz-compressed pickle under a neutral name": ("weights.xz", lambda: lzma.compress(_evil()), "posix.system|os.system"),
    "zip inside a zip": ("bundle.zip", lambda: _zip_with("inner.zip", _zip_with("model.pkl", _evil())), "itself an archive"),
    "gzip inside a .npz": ("arrays.npz", lambda: _zip_with("x.npy.gz", gzip.compress(_evil())), "itself an archive"),
    "pickle entry without extension in a PyTorch-style zip": (
        "model.pt", lambda: _zip_with("archive/data", _evil()), "posix.system|os.system"),
    "7z archive (no 7z support installed)": ("model.7z", lambda: b"7z\xbc\xaf\x27\x1c" + bytes(64), "could not be scanned"),
    "truncated gzip pickle": ("model.pkl.gz", lambda: gzip.compress(_evil())[:20], "could not be scanned"),
    "cloudpickle of a lambda": ("fn.pkl", lambda: __import__("cloudpickle").dumps(lambda x: x), "allow-list|dangerous"),
    "dill of a lambda": ("fn.dill", lambda: __import__("dill").dumps(lambda x: x), "allow-list|dangerous"),
}


@pytest.mark.reliability("hostile input", "malicious pickle in a container",
                         "flagged (dangerous global, not allow-listed, or unscannable: fail closed)")
@pytest.mark.parametrize("case", list(CONTAINER_CASES))
def test_pickles_in_containers_are_flagged(case: str, tmp_path: Path, reliability) -> None:
    name, make, match = CONTAINER_CASES[case]
    path = tmp_path / name
    path.write_bytes(make())
    report = scan_files({name: path})
    assert not report.ok, report
    assert any(re.search(match, finding) for finding in report.findings), report.findings
    reliability(observed="; ".join(report.findings))


@pytest.mark.reliability("hostile input", "protocol 0/1 pickle (no \\x80 header) under a non-pickle name",
                         "recognised by its opcodes and refused before signing")
@pytest.mark.parametrize("protocol,name", [(0, "notes.txt"), (1, "weights")])
def test_text_protocol_pickles_under_any_name_are_scanned(protocol: int, name: str, tmp_path: Path,
                                                          signer: LocalKeyProvider, reliability) -> None:
    model = _model(tmp_path)
    (model / name).write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR." if protocol == 0
                               else b"cos\nsystem\n(X\x0a\x00\x00\x00echo pwnedtR.")
    error = _refused(model, signer, UnsafeModelError, f"{name}: dangerous global")
    reliability(observed=f"{type(error).__name__}: {error}")


def test_text_files_that_start_like_opcodes_still_sign(tmp_path: Path, signer: LocalKeyProvider) -> None:
    model = _model(tmp_path)
    (model / "scores.csv").write_text("0.5,1.2\n3,4\n")      # parses as POP, STOP: scanned, and clean
    (model / "conda.yaml").write_text("channels:\n- conda-forge\n")  # 'c' GLOBAL, then no STOP: not a pickle
    (model / "README").write_text("Some notes\n")
    signed = sign_model(model, signer, "sig", BINDINGS)
    assert {"scores.csv", "conda.yaml", "README"} <= set(signed.files)
