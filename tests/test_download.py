"""MovieLens download against a real HTTP server on localhost: fresh, resumed, broken, refused."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ctxrec.cli import main
from ctxrec.data.download import DownloadError, dataset_folder, download_movielens
from ctxrec.data.movielens import load_movielens


def _zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    # Stored, not deflated, so the archive is large enough for a resume to land mid-file.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buffer.getvalue()


def _movielens_zip(name: str = "ml-latest-small") -> bytes:
    movies = "movieId,title,genres\n" + "".join(
        f"{m},Movie {m} ({1990 + m % 30}),Comedy|Drama\n" for m in range(1, 51))
    ratings = "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{1 + (u * 7 + j) % 50},{1 + (u + j) % 5}.0,{1_500_000_000 + 60 * (u * 40 + j)}\n"
        for u in range(1, 61) for j in range(40))
    return _zip({f"{name}/": "", f"{name}/movies.csv": movies, f"{name}/ratings.csv": ratings})


def _md5_file(data: bytes, name: str) -> bytes:
    return f"MD5 ({name}.zip) = {hashlib.md5(data).hexdigest()}\n".encode()


class _Server:
    """Serves ``files`` by path, honouring ``Range: bytes=N-``, and records every request."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.cut_after: int | None = None  # send only this many body bytes, then hang up
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the name http.server dispatches to)
                server.requests.append((self.path, dict(self.headers)))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                found = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if found:
                    start = int(found.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    body = body[:server.cut_after]
                    self.close_connection = True
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/movielens"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, name: str, data: bytes, md5: bytes | None = None) -> None:
        self.files[f"/movielens/{name}.zip"] = data
        self.files[f"/movielens/{name}.zip.md5"] = md5 if md5 is not None else \
            _md5_file(data, name)

    def ranges(self) -> list[str]:
        return [h["Range"] for path, h in self.requests if "Range" in h]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXREC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_fresh_download_is_checked_and_unpacked(server, home):
    server.publish("ml-latest-small", _movielens_zip())
    seen = []
    folder = download_movielens("ml-latest-small", base_url=server.url,
                                progress=lambda done, total: seen.append((done, total)))
    assert folder == home / "data" / "ml-latest-small" == dataset_folder("ml-latest-small")
    assert sorted(p.name for p in folder.iterdir()) == ["movies.csv", "ratings.csv"]
    assert not list((home / "data").glob("*.part")) and not list((home / "data").glob(".*"))
    size = len(server.files["/movielens/ml-latest-small.zip"])
    assert seen[-1] == (size, size) and all(t == size for _, t in seen)
    assert server.ranges() == []
    catalog, interactions = load_movielens(folder)  # the layout the evaluation reads
    assert len(catalog) == 50 and len(interactions) == 60 * 40


def test_resume_appends_to_the_partial_file(server, home):
    data = _movielens_zip()
    server.publish("ml-latest-small", data)
    part = home / "data" / "ml-latest-small.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:len(data) // 3])
    folder = download_movielens("ml-latest-small", base_url=server.url,
                                progress=lambda done, total: None)
    assert server.ranges() == [f"bytes={len(data) // 3}-"]
    zip_gets = [p for p, _ in server.requests if p.endswith(".zip")]
    assert zip_gets == ["/movielens/ml-latest-small.zip"]
    assert (folder / "ratings.csv").read_bytes() == \
        zipfile.ZipFile(io.BytesIO(data)).read("ml-latest-small/ratings.csv")
    assert not part.exists()


def test_broken_connection_keeps_the_part_and_the_next_run_resumes(server, home):
    data = _movielens_zip()
    server.publish("ml-latest-small", data)
    server.cut_after = 10_000
    with pytest.raises(DownloadError, match=r"after 10,000 of [\d,]+ bytes.*Run the command again"):
        download_movielens("ml-latest-small", base_url=server.url,
                           progress=lambda done, total: None)
    part = home / "data" / "ml-latest-small.zip.part"
    assert part.stat().st_size == 10_000 and not dataset_folder("ml-latest-small").exists()
    server.cut_after = None
    folder = download_movielens("ml-latest-small", base_url=server.url,
                                progress=lambda done, total: None)
    assert server.ranges() == ["bytes=10000-"] and (folder / "movies.csv").is_file()


def test_server_ignoring_range_starts_over(server, home, monkeypatch):
    data = _movielens_zip()
    server.publish("ml-latest-small", data)
    part = home / "data" / "ml-latest-small.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes from another file")
    original = server.httpd.RequestHandlerClass.do_GET
    asked = []

    def no_ranges(handler):
        asked.append(handler.headers.get("Range"))
        del handler.headers["Range"]
        original(handler)

    monkeypatch.setattr(server.httpd.RequestHandlerClass, "do_GET", no_ranges)
    folder = download_movielens("ml-latest-small", base_url=server.url,
                                progress=lambda done, total: None)
    assert asked[-1] == f"bytes={len(b'stale bytes from another file')}-"  # a resume was tried
    assert (folder / "movies.csv").read_bytes() == \
        zipfile.ZipFile(io.BytesIO(data)).read("ml-latest-small/movies.csv")


def test_checksum_mismatch_deletes_the_file_and_unpacks_nothing(server, home):
    data = _movielens_zip()
    server.publish("ml-latest-small", data, md5=b"MD5 (ml-latest-small.zip) = " + b"0" * 32)
    with pytest.raises(DownloadError) as caught:
        download_movielens("ml-latest-small", base_url=server.url,
                           progress=lambda done, total: None)
    message = str(caught.value)
    assert message.startswith(f"checksum mismatch for {server.url}/ml-latest-small.zip")
    assert f"expected MD5 {'0' * 32}, got {hashlib.md5(data).hexdigest()}" in message
    assert "deleted" in message
    assert not dataset_folder("ml-latest-small").exists()
    assert list((home / "data").iterdir()) == []


def test_pinned_checksum_wins_over_the_servers_md5_file(server, home):
    server.publish("ml-1m", _movielens_zip("ml-1m"))  # its .md5 matches, the pinned one cannot
    with pytest.raises(DownloadError, match="expected MD5 c4d9eecfca2ab87c1945afe126590906"):
        download_movielens("ml-1m", base_url=server.url, progress=lambda done, total: None)
    assert [p for p, _ in server.requests] == ["/movielens/ml-1m.zip"]
    assert not dataset_folder("ml-1m").exists()


def test_missing_checksum_file_is_a_clear_error(server):
    server.files["/movielens/ml-latest-small.zip"] = _movielens_zip()
    with pytest.raises(DownloadError,
                       match=rf"could not download {server.url}/ml-latest-small.zip.md5: HTTP 404"):
        download_movielens("ml-latest-small", base_url=server.url)


def test_server_down_is_one_readable_error():
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/movielens"
    with pytest.raises(DownloadError) as caught:
        download_movielens("ml-latest-small", base_url=url, timeout=5)
    message = str(caught.value)
    assert message.startswith(f"could not download {url}/ml-latest-small.zip.md5: ")
    assert "refused" in message.lower() and "connection" in message


def test_zip_with_a_parent_member_is_refused(server, home):
    evil = _zip({"ml-latest-small/movies.csv": "movieId,title,genres\n", "../evil": "gotcha"})
    server.publish("ml-latest-small", evil)
    with pytest.raises(DownloadError, match=r"points outside its folder \('../evil'\).*Nothing"):
        download_movielens("ml-latest-small", base_url=server.url,
                           progress=lambda done, total: None)
    assert not dataset_folder("ml-latest-small").exists()
    assert not (home / "evil").exists() and not (home / "data" / "evil").exists()
    assert list((home / "data").iterdir()) == []


def test_zip_with_an_absolute_member_is_refused(server):
    server.publish("ml-latest-small", _zip({"/tmp/ctxrec-evil": "gotcha"}))
    with pytest.raises(DownloadError, match="absolute path"):
        download_movielens("ml-latest-small", base_url=server.url,
                           progress=lambda done, total: None)


def test_unknown_name_lists_the_choices():
    with pytest.raises(DownloadError, match="ml-latest-small, ml-1m, ml-25m"):
        download_movielens("ml-999")


def test_cli_downloads_and_prints_the_folder(server, home, capsys):
    server.publish("ml-latest-small", _movielens_zip())
    code = main(["data", "download", "ml-latest-small", "--base-url", server.url])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == str(home / "data" / "ml-latest-small")
    assert (home / "data" / "ml-latest-small" / "ratings.csv").is_file()
    assert "100.0%" in err  # the progress bar reached its end
    assert main(["data", "download", "ml-latest-small", "--base-url", server.url]) == 0
    assert "already there" in capsys.readouterr().err


def test_cli_network_failure_exits_2_without_traceback(capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["data", "download", "ml-latest-small", "--base-url", f"http://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: could not download http://127.0.0.1:")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
