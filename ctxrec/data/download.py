"""Download a MovieLens data set from GroupLens, check it, and unpack it into the data folder.

For people who are online; nothing else in ctxrec needs the network. Only the standard library is
used. The zip is written to ``<name>.zip.part`` next to its destination, so an interrupted download
resumes where it stopped (HTTP ``Range``), and it is unpacked into a temporary folder that is
renamed into place, so ``data/<name>`` either is complete or does not exist.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO

from .home import data_home

__all__ = [
    "BASE_URL",
    "DATASETS",
    "KNOWN_MD5",
    "DownloadError",
    "ProgressBar",
    "dataset_folder",
    "download_command",
    "download_movielens",
]

BASE_URL = "https://files.grouplens.org/datasets/movielens"
DATASETS = ("ml-latest-small", "ml-1m", "ml-25m")
# Archives GroupLens has frozen. ml-latest-small is left out on purpose: GroupLens says the
# "latest" sets may be regenerated, so its published .md5 is fetched each time instead.
KNOWN_MD5 = {
    "ml-1m": "c4d9eecfca2ab87c1945afe126590906",
    "ml-25m": "6b51fb2759a8657d3bfcbfc42b592ada",
}
CHUNK = 1 << 16

ProgressFn = Callable[[int, int | None], None]


class DownloadError(RuntimeError):
    """A download, check or extraction failed; the message says what and what to do."""


def dataset_folder(name: str) -> Path:
    """Where ``name`` is (or will be) unpacked: ``data_home() / "data" / name``."""
    return data_home() / "data" / name


def download_movielens(name: str, base_url: str = BASE_URL, force: bool = False,
                       progress: ProgressFn | None = None, timeout: float = 30.0) -> Path:
    """Download, verify and unpack a MovieLens zip; returns the folder with its CSV files.

    Args:
        name: one of :data:`DATASETS`.
        base_url: folder URL holding ``<name>.zip`` and ``<name>.zip.md5``.
        force: download again even when the folder already exists.
        progress: called with (bytes done, bytes total or None); default a bar on stderr.
        timeout: seconds to wait for the server before giving up.

    Raises:
        DownloadError: unknown name, network failure, checksum mismatch or unsafe archive.
    """
    if name not in DATASETS:
        raise DownloadError(f"unknown data set '{name}'; choose one of {', '.join(DATASETS)}")
    dest = dataset_folder(name)
    if dest.is_dir() and not force:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    url = f"{base_url.rstrip('/')}/{name}.zip"
    # Fetched before the zip so that a missing checksum fails in a second, not after 250 MB.
    expected = KNOWN_MD5.get(name) or _published_md5(f"{url}.md5", timeout)
    part = dest.parent / f"{name}.zip.part"
    _fetch(url, part, progress or ProgressBar(f"{name}.zip"), timeout)
    actual = _md5(part)
    if actual != expected:
        part.unlink()
        raise DownloadError(f"checksum mismatch for {url}: expected MD5 {expected}, got {actual}. "
                            "The file was deleted; run the command again to download it afresh.")
    try:
        _extract(part, dest, url)
    finally:
        # Checked and unpacked, or found unsafe: either way it is of no further use.
        part.unlink(missing_ok=True)
    return dest


def download_command(name: str, base_url: str = BASE_URL, force: bool = False) -> int:
    """``python -m ctxrec data download``: prints the folder; exit code 0, or 2 with one line."""
    try:
        existed = dataset_folder(name).is_dir() and not force
        folder = download_movielens(name, base_url=base_url, force=force)
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the local side: disk full, folder not writable
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume the download", file=sys.stderr)
        return 130
    if existed:
        print(f"{name} is already there (use --force to download it again)", file=sys.stderr)
    print(folder)
    return 0


class ProgressBar:
    """``name [#####     ]  50.0%  1.2/2.4 MB`` on stderr, redrawn at most every 0.2 s."""

    def __init__(self, label: str, stream: IO[str] | None = None, width: int = 30):
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self._last = 0.0

    def __call__(self, done: int, total: int | None) -> None:
        finished = total is not None and done >= total
        now = time.monotonic()
        if not finished and now - self._last < 0.2:
            return
        self._last = now
        if total:
            filled = int(self.width * min(done / total, 1.0))
            line = (f"{self.label} [{'#' * filled:<{self.width}}] {100 * done / total:5.1f}%  "
                    f"{_mb(done)}/{_mb(total)} MB")
        else:
            line = f"{self.label} {_mb(done)} MB"
        print(f"\r{line}", end="\n" if finished else "", file=self.stream, flush=True)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _request(url: str, headers: dict[str, str], timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": "ctxrec-download", **headers})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError:
        raise  # the caller decides: 416 on a resume is not a failure
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise DownloadError(f"could not download {url}: {_reason(err)}. Check the address and "
                            "your connection.") from None


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    reason = getattr(err, "reason", err)  # URLError wraps the socket error
    return getattr(reason, "strerror", None) or str(reason) or type(reason).__name__


def _published_md5(url: str, timeout: float) -> str:
    try:
        with _request(url, {}, timeout) as response:
            text = response.read(4096).decode("ascii", "replace")
    except urllib.error.HTTPError as err:
        raise DownloadError(f"could not download {url}: {_reason(err)}") from None
    except (http.client.HTTPException, OSError) as err:
        raise DownloadError(f"could not download {url}: {_reason(err)}") from None
    # GroupLens writes "MD5 (name.zip) = <hex>"; md5sum writes "<hex>  name.zip".
    found = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    if not found:
        raise DownloadError(f"{url} does not contain an MD5 checksum (it starts: {text[:60]!r})")
    return found.group(0).lower()


def _fetch(url: str, part: Path, progress: ProgressFn, timeout: float) -> None:
    """Download ``url`` into ``part``, continuing a previous partial download when there is one."""
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = _request(url, headers, timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return  # the part file is already whole (or too long): the checksum will tell
        raise DownloadError(f"could not download {url}: {_reason(err)}") from None
    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                # A range we did not ask for cannot be appended; start over without one.
                response.close()
                part.unlink()
                return _fetch(url, part, progress, timeout)
            total = total or (offset + length if length is not None else None)
            mode = "ab"
        else:
            # 200: the server ignores ranges (or there was nothing to resume); start from zero.
            offset, total, mode = 0, length, "wb"
        done = offset
        with part.open(mode) as out:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (http.client.HTTPException, OSError) as err:
                    raise DownloadError(f"the download of {url} broke off after {done:,} bytes: "
                                        f"{_reason(err)}. Run the command again to resume."
                                        ) from None
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                progress(done, total)
    if total is None:
        progress(done, done)
    elif done < total:
        raise DownloadError(f"the server closed the connection after {done:,} of {total:,} bytes "
                            f"of {url}. Run the command again to resume.")


def _content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, full size) from ``bytes START-END/SIZE``; None for what is missing."""
    found = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value)
    if not found:
        return None, None
    return int(found.group(1)), int(found.group(2)) if found.group(2).isdigit() else None


def _extract(archive: Path, dest: Path, url: str) -> None:
    """Unpack into ``dest``, dropping the archive's single top folder (GroupLens zips have one)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [(info, _safe_parts(info.filename, url)) for info in zf.infolist()]
            files = [(info, parts) for info, parts in members if parts and not info.is_dir()]
            if not files:
                raise DownloadError(f"{url} is an empty archive")
            tops = {parts[0] for _, parts in files}
            strip = 1 if len(tops) == 1 and all(len(parts) > 1 for _, parts in files) else 0
            staging = dest.parent / f".{dest.name}.unpacking"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            try:
                for info, parts in files:
                    target = staging.joinpath(*parts[strip:])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as source, target.open("wb") as sink:
                        shutil.copyfileobj(source, sink, CHUNK)
                if dest.exists():  # only with force: replace the old copy as a whole
                    shutil.rmtree(dest)
                staging.rename(dest)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{url} is not a readable zip archive ({err})") from None


def _safe_parts(name: str, url: str) -> tuple[str, ...]:
    """The member's path components; refuses anything that could land outside the folder."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise DownloadError(f"{url} contains a member with an absolute path ({name!r}); refusing "
                            "to unpack it. Nothing was extracted.")
    parts = tuple(p for p in PurePosixPath(posix).parts if p not in ("", "."))
    if ".." in parts:
        raise DownloadError(f"{url} contains a member that points outside its folder ({name!r}); "
                            "refusing to unpack it. Nothing was extracted.")
    return parts
