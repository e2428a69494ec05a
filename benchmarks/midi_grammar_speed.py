"""MidiGrammar: microseconds per allowed()/advance() call, and how much of real music it accepts.

    python benchmarks/midi_grammar_speed.py [--walks 8] [--bars 16] [--chorales 20]

Speed: seeded random walks (uniform over the allowed tokens) for each scheme with three
instruments (piano, violin, drums) in 4/4 at 100 bpm, ``--bars`` bars, at most 1024 tokens;
prints the mean microseconds of ``allowed`` and ``advance`` per token, and, as the peer measured
in the same run, the microseconds that a sampler spends anyway on that token's masked draw in torch
(``masked_fill`` + ``softmax`` + ``multinomial`` on one [vocab] row), with the ratio grammar/peer.

Acceptance: every fixture MIDI file (../shared/fixtures/midi_one_track) and the first
``--chorales`` Bach chorales of music21, encoded by each scheme, then fed token by token to a
grammar with the piece's own controls (strict, and with ``allow_changes``); prints the pieces and
the fraction of tokens accepted.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from ostinato import events
from ostinato.symbolic.midi_grammar import MidiGrammar
from ostinato.symbolic.midi_tokens import Controls
from ostinato.symbolic.tokenizers import build_tokenizer

SCHEMES = ("remi", "tsd", "midilike")
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "midi_one_track"


def speed(scheme: str, walks: int, bars: int) -> None:
    import torch

    tok = build_tokenizer(scheme)
    grammar = MidiGrammar(tok, controls=Controls(meter="4/4", tempo_bpm=100, instruments=(0, 40, "drums")),
                          bars=bars, max_tokens=1024)
    rng = np.random.default_rng(0)
    t_allowed = t_advance = 0.0
    n = 0
    for _ in range(walks):
        state = grammar.start()
        while not grammar.finished(state):
            t0 = time.perf_counter()
            mask = grammar.allowed(state)
            t1 = time.perf_counter()
            ids = np.flatnonzero(mask)
            token = int(ids[rng.integers(len(ids))])
            t2 = time.perf_counter()
            state = grammar.advance(state, token)
            t3 = time.perf_counter()
            t_allowed += t1 - t0
            t_advance += t3 - t2
            n += 1
    # peer: the masked draw a sampler does for the same token anyway
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(len(tok), generator=gen)
    mask_t = torch.from_numpy(grammar.allowed(grammar.start()))
    reps = 2000
    t0 = time.perf_counter()
    for _ in range(reps):
        probs = torch.softmax(logits.masked_fill(~mask_t, float("-inf")), dim=-1)
        torch.multinomial(probs, 1, generator=gen)
    peer = (time.perf_counter() - t0) / reps
    ours = (t_allowed + t_advance) / n
    print(f"{scheme:9s} {n:6d} tokens in {walks} walks: allowed {t_allowed / n * 1e6:6.1f} us, "
          f"advance {t_advance / n * 1e6:5.1f} us; peer masked draw {peer * 1e6:5.1f} us; "
          f"ratio grammar/peer {ours / peer:.2f}; batch of 64: {64 * ours * 1e3:.2f} ms per step")


def accepted(grammar: MidiGrammar, ids: list[int]) -> int:
    state = grammar.start()
    for k, t in enumerate(ids):
        try:
            state = grammar.advance(state, t)
        except ValueError:
            return k
    return len(ids)


def acceptance(scheme: str, chorales: int) -> None:
    from ostinato.events.sources import iter_items

    tok = build_tokenizer(scheme)
    pieces = [(p.name, events.read(p)) for p in sorted(FIXTURES.glob("*.mid")) if p.name != "empty.mid"]
    items = [i for i in iter_items("music21:bach") if i.path.endswith(".mxl")][:chorales]
    pieces += [(Path(i.path).name, i.read()) for i in items]
    for mode in ("strict", "allow_changes"):
        total = ok_tokens = ok_pieces = 0
        refused = []
        for name, table in pieces:
            if not len(table):
                continue
            ids = tok.encode(table)
            controls = tok.controls_of(table)
            if controls.meter is not None and MidiGrammar(tok).meter_of(controls.meter) is None:
                controls = dataclasses.replace(controls, meter=None)   # the encoder writes Meter:none
            grammar = MidiGrammar(tok, controls=controls, max_tokens=len(ids), allow_changes=mode != "strict")
            k = accepted(grammar, ids)
            total += len(ids)
            ok_tokens += k
            ok_pieces += k == len(ids)
            if k < len(ids):
                refused.append(f"{name} at {k} ({tok.vocab[ids[k]]})")
        print(f"{scheme:9s} {mode:13s}: {ok_pieces}/{len(pieces)} pieces whole, {ok_tokens / total:.3f} of "
              f"{total} tokens; refused: {'; '.join(refused) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--walks", type=int, default=8)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--chorales", type=int, default=20)
    args = parser.parse_args()
    for scheme in SCHEMES:
        speed(scheme, args.walks, args.bars)
    for scheme in SCHEMES:
        acceptance(scheme, args.chorales)


if __name__ == "__main__":
    main()
