"""``convert --engine ray`` on a local Ray instance (2 CPUs): same results as the local pool, errors per item."""

import pytest
from conftest import run_cli
from test_convert_cli import GOOD_TUNES, LOOP_TUNE, _midi

from ostinato.corpora.manifest import read_manifest
from ostinato.corpora.shards import iter_shard_pieces

pytest.importorskip("ray")


def test_ray_engine_matches_the_local_pool(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for n in range(6):
        _midi(src / f"m{n}.mid", [50 + n, 55 + n, 60 + n])
    (src / "tunes.abc").write_text("\n".join(GOOD_TUNES) + "\n" + LOOP_TUNE)
    (src / "bad.mid").write_bytes(b"MThd")
    (src / "noise.abc").write_bytes(b"\x00\xff" * 10)
    common = ("--to", "tokens", "--tokenizer", "remi", "-j", "2", "--time-limit", "30", "--abc-reader", "music21")
    # 30 s: the music21 loop tune must time out, while a loaded machine still starts each Ray worker in time
    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    ray = run_cli("convert", str(src), *common, "-o", str(ray_out), "--engine", "ray", "--ray-batch-size", "2")
    assert ray.returncode == 1, ray.stderr
    manifest = ray_out / "manifest.jsonl"
    assert ray.stdout.splitlines()[-1] == f"converted 8/11, failed 3, skipped 0 (manifest: {manifest})"
    records = {r["key"]: r for r in read_manifest(manifest)}
    assert records["src/bad.mid"]["message"] == "not a MIDI file (no MThd header)"
    assert records["src/noise.abc"]["message"] == "not an ABC file (binary data)"
    assert records["src/tunes.abc#3"]["error"] == "Timeout"
    for key in ("src/bad.mid", "src/noise.abc", "src/tunes.abc#3"):
        assert f"ostinato: {key}: " in ray.stderr
    local = run_cli("convert", str(src), *common, "-o", str(local_out))
    assert local.stdout.splitlines()[-1].startswith("converted 8/11, failed 3, skipped 0")
    ray_pieces = {k: v.tolist() for k, v in iter_shard_pieces(ray_out, split="all")}
    local_pieces = {k: v.tolist() for k, v in iter_shard_pieces(local_out, split="all")}
    assert len(ray_pieces) == 8 and ray_pieces == local_pieces
