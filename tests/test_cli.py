import json
import subprocess
import sys

from conftest import ROOT


def _run(*args):
    return subprocess.run([sys.executable, "-m", "ctxrec", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_recommend_prints_a_table():
    out = _run("recommend", "--intent", "a board game for friends", "--when",
               "2026-11-21T20:00", "--with", "friends", "-k", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["rank", "item_id", "title"] and len(lines) == 4


def test_bad_catalog_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"name\nx\n")
    out = _run("recommend", "--catalog", str(bad))
    assert out.returncode == 2 and "error: Catalog rejected" in out.stderr
    assert "Traceback" not in out.stderr


def test_bench_recommend_prints_json():
    out = _run("bench", "recommend", "--sizes", "500", "--calls", "3")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    timings = result["results"]["500"]["new_intent"]
    assert 0 < timings["p50_ms"] <= timings["p95_ms"]
    assert 0 < result["encode"]["ratio"] and result["device"] in ("cpu", "cuda", "mps")
