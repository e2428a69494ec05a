"""examples/convert_corpus.py runs as a user would run it, twice (the second run resumes)."""

import subprocess
import sys

from conftest import REPO

from ostinato.corpora import iter_items, iter_shard_pieces
from ostinato.symbolic.tokenizers import load_tokenizer


def test_convert_corpus_example(tmp_path):
    command = [sys.executable, str(REPO / "examples" / "convert_corpus.py"), "-o", str(tmp_path / "shards")]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == ("313 pieces in music21:essenFolksong/altdeu10.abc (11 held out), "
                        "e.g. essenFolksong/altdeu10.abc#1")
    assert lines[1] == f"converted 313/313, failed 0, skipped 0 (manifest: {tmp_path / 'shards' / 'manifest.jsonl'})"
    tokenizer = load_tokenizer(tmp_path / "shards" / "tokenizer.json")
    items = {i.key: i for i in iter_items("music21:essenFolksong/altdeu10.abc")}
    test = dict(iter_shard_pieces(tmp_path / "shards", split="test"))
    assert sorted(test) == sorted(k for k, i in items.items() if i.held_out)
    for key, ids in test.items():
        assert ids.tolist() == tokenizer.encode(items[key].abc_text())
    second = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert second.stdout.splitlines()[1].startswith("converted 0/313, failed 0, skipped 313")
