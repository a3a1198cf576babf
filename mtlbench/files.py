"""Files in folders others may write to: atomic writes, strict JSON, loads that never unpickle code, and
corrupt files moved aside rather than trusted or left to fail every retry.

Results folders and mask files are shared on clusters, so mtlbench treats what it reads as untrusted:
``torch.load`` runs with ``weights_only=True`` (tensors and plain containers only; a pickle that would build
any other object is refused with an error naming the file), JSON is parsed strictly, and NaN or infinity is
never written.
"""
from __future__ import annotations

import errno
import io
import json
import math
import os
import pickle
import re
import shutil
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

from .errors import UserError


class UnsafeFile(UserError, ValueError):
    """A file that holds objects mtlbench will not unpickle."""


class CorruptFile(UserError, ValueError):
    """A file that cannot be read (truncated, not of its format)."""


NAME = re.compile(r"[A-Za-z0-9_.-]+")


class UnsafeName(UserError, ValueError):
    """A name that would build a path outside its folder."""


def check_name(name: str, what: str = "suite name") -> str:
    """A name that becomes a folder or file name: letters, digits, ``_``, ``-`` and ``.``, not ``.`` or ``..``
    (so it can never reach outside the folder it is placed in)."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or name in (".", ".."):
        raise UnsafeName(f"{what} {name!r}: use letters, digits, '_', '-' and '.' only (not '.' or '..'), e.g. "
                         f"'my_suite-v2'")
    return name


def inside(root: Path, *parts: str) -> Path:
    """``root / parts``, refused if it would leave ``root``."""
    path = root.joinpath(*parts)
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{path}: leaves {root}")
    return path


class DiskFull(UserError, OSError):
    """No space left where a file was being written; the message names the folder and what to do."""


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """``write`` into a temporary file in the same folder, then rename it: a reader sees the old or the new
    content, never a part. A failed write removes its temporary file (a full disk stays no fuller) and a full
    disk says so (DiskFull); a kill leaves only a ``.tmp`` file, removed on the next run of the job."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as stream:
            write(stream)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise DiskFull(errno.ENOSPC, f"no space left on {path.parent} while writing {path.name} "
                                         f"({free_space(path.parent)} free): free some space, then run again "
                                         f"(finished jobs stay finished, unfinished ones resume)") from None
        raise


def free_space(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB"
    except OSError:
        return "unknown"


def write_text_atomic(path: Path, text: str) -> None:
    """A text file written atomically (``write_atomic``)."""
    write_atomic(path, lambda stream: stream.write(text.encode()))


def write_json_atomic(path: Path, payload: Any) -> None:
    """Strict JSON (``allow_nan=False``: a NaN or infinity is an error, never written), atomically."""
    write_text_atomic(path, json.dumps(payload, indent=1, allow_nan=False))


def read_json(path: Path) -> Any:
    """A JSON file; CorruptFile names the file when it does not parse. (Files written before mtlbench 0.2 may
    hold NaN, which is still read: a stored result stays valid; readers show such a value as undefined.)"""
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise CorruptFile(f"{path}: not valid JSON ({error})") from None


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # torch colours parts of its messages; logs and error.txt get text
REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")  # in torch's message: the class it would have built


def load_tensors(path: Path, what: str) -> Any:
    """``torch.load`` of tensors and plain containers only. UnsafeFile if the file is a pickle that asks to build
    any other object (it is never built), CorruptFile if it cannot be read (truncated, random bytes)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not is_torch_pickle(path):  # the restricted unpickler refuses garbage with the same error
            raise CorruptFile(f"{path}: cannot read this {what} (not a file torch.save writes: neither a zip archive "
                              f"with a pickle nor a pickle)") from None
        found = REFUSED_GLOBAL.search(ANSI_ESCAPE.sub("", str(error)))
        asked = f" (it asks for {found.group(1)})" if found else ""
        raise UnsafeFile(f"{path}: refused to load this {what}: it holds Python objects other than tensors and "
                         f"plain containers{asked}, which mtlbench never unpickles (a file in a shared folder could "
                         f"run code). Save it as a dict of tensors, e.g. torch.save({{'labels_weights': mask}}, "
                         f"path).") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CorruptFile(f"{path}: cannot read this {what} ({type(error).__name__}: "
                          f"{ANSI_ESCAPE.sub('', str(error)).splitlines()[0] if str(error) else 'truncated'})") from None


LEGACY_PICKLES = 4  # torch's legacy format: magic number, protocol version, system info, then the object


def is_torch_pickle(path: Path) -> bool:
    """Whether a file is what torch.save writes: a zip archive whose ``data.pkl`` is a well-formed pickle, or
    (torch's legacy format) a file that starts with its four pickles. The opcodes are only parsed
    (pickletools), never run."""
    import pickletools

    def well_formed(stream: Any, pickles: int) -> bool:
        try:
            for _ in range(pickles):
                opcodes = pickletools.genops(stream)
                first = next(opcodes)[0].name
                for _ in opcodes:
                    pass
                if first != "PROTO":  # torch.save pickles with protocol 2 or later
                    return False
        except (ValueError, StopIteration, EOFError, UnicodeDecodeError):
            return False
        return True

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if name.endswith("data.pkl")]
            return bool(names) and well_formed(io.BytesIO(archive.read(names[0])), 1)
    with open(path, "rb") as stream:
        return well_formed(stream, LEGACY_PICKLES)


def finite_or_none(value: float) -> float | None:
    """A statistic that is undefined (NaN) or unbounded is written as null, never as a number."""
    return value if math.isfinite(value) else None


def as_float(value: float | None) -> float:
    """A stored statistic back as a float (null -> NaN), for arithmetic that must see it undefined."""
    return math.nan if value is None else float(value)


def non_finite_fields(value: Any, path: str = "") -> list[str]:
    """The dotted paths of every NaN or infinite number in a JSON-like value."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"{path} = {value}"]
    if isinstance(value, dict):
        return [bad for key, item in value.items() for bad in non_finite_fields(item, f"{path}.{key}" if path else
                                                                                  str(key))]
    if isinstance(value, (list, tuple)):
        return [bad for i, item in enumerate(value) for bad in non_finite_fields(item, f"{path}[{i}]")]
    return []


def move_aside(path: Path, reason: str) -> Path:
    """Rename a corrupt file to ``<name>.corrupt-<unix time>`` (kept for inspection, no longer read) and warn,
    naming the file once (a reason may start with it)."""
    target = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    os.replace(path, target)
    warnings.warn(f"{path}: {reason.removeprefix(f'{path}: ')}; moved aside to {target.name}", stacklevel=2)
    return target


def remove_stale_temporaries(folder: Path) -> None:
    """Delete ``*.tmp`` files that killed writers left in ``folder``."""
    for stale in folder.glob("*.tmp"):
        stale.unlink(missing_ok=True)
