"""Sampling: a KV-cached loop with temperature, top-k, top-p, a seed, batches and a grammar mask.

    ids = sample(model, prompt=[bos, ...], n=16, config=SamplingConfig(temperature=0.9, top_p=0.95, seed=1),
                 grammars=[AbcGrammar(tok, meter="6/8") for _ in range(16)], eos_id=tok.eos_id)

Each step feeds one new token per sequence and reuses the cached keys and values of the
previous ones (a preallocated cache for GPT-2 weights, :mod:`symbolic.fast_decode`; transformers'
``past_key_values`` otherwise), so a step costs one token of work, not a pass over the whole
sequence. A grammar (one per sequence: ``start/allowed/advance/finished``)
masks every token that would make the piece invalid before the sampling draw, so whatever is
drawn keeps it valid. The same seed gives the same tokens.

A step's products are tiny (one token per sequence), so decoding uses at most one intra-op thread per
sequence (:func:`decoding_threads`): on a machine busy with other work the threads' waits on each other
made a one-piece ``compose`` 2.3x slower (16-18 s against 7 s with one thread, two training runs on the
2 cores); idle, the second thread saved 7% (5.2-5.5 s against 5.7-6.1 s). The tokens do not depend on
the thread count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SamplingConfig:
    """How to draw each token.

    Attributes:
        temperature: divides the logits; 0 picks the most likely token (greedy).
        top_k: keep only the k most likely tokens (0: all).
        top_p: keep the smallest set of tokens whose probability reaches p (1.0: all).
        max_tokens: the longest sequence, prompt included (at most the model's context, unless
            :func:`sample` is given a ``window`` to slide on with).
        seed: seeds the draws; the same seed gives the same samples.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature: expected >= 0, got {self.temperature!r}")
        if self.top_k < 0:
            raise ValueError(f"top_k: expected >= 0, got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p: expected 0 < top_p <= 1, got {self.top_p!r}")
        if self.max_tokens < 2:
            raise ValueError(f"max_tokens: expected >= 2, got {self.max_tokens!r}")


def filter_logits(logits: torch.Tensor, *, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set to -inf every logit outside the top-k and outside the top-p nucleus. [B, V] -> [B, V]."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]            # [B, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs                       # mass strictly before each token
        drop_sorted = before >= top_p                                      # the first token is always kept
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def sample(model, *, prompt: Sequence[int], n: int = 1, config: SamplingConfig = SamplingConfig(),
           grammars: Sequence | None = None, eos_id: int, pad_id: int = 0,
           on_step: Callable[[int], None] | None = None,
           window: Callable[[list[int]], list[int]] | None = None,
           mix: Sequence[Callable[[list[int], torch.Tensor], torch.Tensor]] | None = None) -> list[list[int]]:
    """Draw ``n`` continuations of ``prompt``; returns each sequence (prompt included, up to ``<eos>``).

    Args:
        model: a transformers causal LM (``model(input_ids, past_key_values=..., use_cache=True)``).
        prompt: the tokens every sample starts with (``<bos>`` and any controls or primer).
        grammars: one grammar per sample (or None): its mask is applied before every draw, and the
            prompt must be allowed by it. The grammar sees the whole sequence, window or not.
        on_step: called with the number of new tokens so far (for a progress bar).
        window: ``window(sequence) -> tokens``, what the model is fed to go on with a sequence that
            fills its context: the same music re-encoded shorter (e.g. the control prefix and the most
            recent bars, :meth:`symbolic.midi_tokens.MidiTokenizer.window`), at most half the context.
            With it a sequence may grow to ``config.max_tokens`` (beyond the context): whenever the
            context is full the model restarts on the window. Without it the sequence stops at the
            context (and a longer prompt is a ValueError).
        mix: one per sample (or None): ``mix(sequence, log_probs [V]) -> log_probs [V]``, the model's
            next-token distribution made another before the grammar's mask and the draw (an infill's
            quotes, :mod:`symbolic.quote`).
    """
    device = next(model.parameters()).device
    context = context_of(model)
    limit = config.max_tokens if window is not None else min(config.max_tokens, context)
    if len(prompt) >= limit or (window is None and len(prompt) >= context):
        raise ValueError(f"the prompt has {len(prompt)} tokens; the model's limit is {limit}")
    if mix is not None and len(mix) != n:
        raise ValueError(f"mix: expected {n}, got {len(mix)}")
    states = None
    if grammars is not None:
        if len(grammars) != n:
            raise ValueError(f"grammars: expected {n}, got {len(grammars)}")
        states = [g.start() for g in grammars]
        for token in prompt:
            states = [g.advance(s, token) for g, s in zip(grammars, states, strict=True)]
    run = _Run(model=model, config=config, grammars=grammars, states=states, mix=mix, eos_id=eos_id, pad_id=pad_id,
               limit=limit, context=context, device=device, on_step=on_step,
               generator=torch.Generator(device="cpu").manual_seed(config.seed),
               sequences=[list(prompt) for _ in range(n)], done=np.zeros(n, dtype=bool))
    if states is not None:
        run.done[:] = [g.finished(s) for g, s in zip(grammars, states, strict=True)]
    feed = list(prompt) if len(prompt) < context else _shorter(window, list(prompt), context)
    run.go(list(range(n)), feed)
    for i in range(n):   # past the context: each sequence on its own, from its window
        while not run.done[i]:
            run.go([i], _shorter(window, run.sequences[i], context))
    return run.sequences


def _shorter(window, sequence: list[int], context: int) -> list[int]:
    fed = window(sequence)
    if not 0 < len(fed) <= context // 2 + 1:
        raise ValueError(f"window: gave {len(fed)} tokens; expected 1 to {context // 2 + 1}")
    return fed


@dataclass
class _Run:
    """The state of one :func:`sample` call: the sequences, grammar states and the draws so far."""

    model: object
    config: SamplingConfig
    grammars: Sequence | None
    states: list | None
    mix: Sequence | None
    eos_id: int
    pad_id: int
    limit: int
    context: int
    device: object
    on_step: Callable[[int], None] | None
    generator: torch.Generator
    sequences: list[list[int]]
    done: np.ndarray
    n_new: int = 0

    def go(self, rows: list[int], feed: list[int]) -> None:
        """Sample ``rows`` on, the model fed ``feed`` first, until they finish or the context is full."""
        with decoding_threads(len(rows)):
            self._go(rows, feed)

    def _go(self, rows: list[int], feed: list[int]) -> None:
        grammars, states, done, config = self.grammars, self.states, self.done, self.config
        input_ids = torch.tensor([feed] * len(rows), dtype=torch.long, device=self.device)   # [B, P]
        next_logits = _decoder(self.model, len(rows), self.context)
        for _ in range(self.context - len(feed)):
            logits = next_logits(input_ids).float().cpu()                  # [B, V]
            if self.mix is not None:
                logits = torch.log_softmax(logits, dim=-1)
                logits = torch.stack([self.mix[i](self.sequences[i], row) if not done[i] else row
                                      for i, row in zip(rows, logits, strict=True)])
            if states is not None:
                mask = np.stack([grammars[i].allowed(states[i]) if not done[i] else _only(self.eos_id, logits.shape[-1])
                                 for i in rows])
                logits = logits.masked_fill(~torch.from_numpy(mask), float("-inf"))
            if config.temperature == 0:
                tokens = logits.argmax(dim=-1)
            else:
                logits = filter_logits(logits / config.temperature, top_k=config.top_k, top_p=config.top_p)
                tokens = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=self.generator)[:, 0]
            for i, token in zip(rows, tokens.tolist(), strict=True):
                if done[i]:
                    continue
                self.sequences[i].append(token)
                if states is not None:
                    states[i] = grammars[i].advance(states[i], token)
                    done[i] = grammars[i].finished(states[i])
                else:
                    done[i] = token == self.eos_id
                if len(self.sequences[i]) >= self.limit:
                    done[i] = True
            self.n_new += 1
            if self.on_step is not None:
                self.on_step(self.n_new)
            if done[rows].all():
                return
            feed_now = torch.where(torch.from_numpy(done[rows]), torch.full_like(tokens, self.pad_id), tokens)
            input_ids = feed_now[:, None].to(self.device)                  # [B, 1]
        if any(not done[i] for i in rows) and self.limit <= self.context:   # no window: the context is the end
            done[rows] = True


@contextmanager
def decoding_threads(batch: int) -> Iterator[int]:
    """Within it torch uses at most ``batch`` intra-op threads (one per sequence decoded; never more than it
    had); the count it had is restored after. Yields the count used."""
    before = torch.get_num_threads()
    used = max(1, min(before, batch))
    if used != before:
        torch.set_num_threads(used)
    try:
        yield used
    finally:
        if used != before:
            torch.set_num_threads(before)


def _decoder(model, batch: int, limit: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``feed(ids [B, T]) -> logits [B, V]`` of the last position, keeping the KV cache between calls.

    GPT-2 weights go through :class:`symbolic.fast_decode.GPT2Decoder` (same logits, less
    overhead per step); any other model through transformers' forward with ``past_key_values``.
    """
    from .fast_decode import GPT2Decoder, supports

    if supports(model):
        return GPT2Decoder(model, batch=batch, max_tokens=limit).step
    past = None

    def feed(ids: torch.Tensor) -> torch.Tensor:
        nonlocal past
        out = model(input_ids=ids, past_key_values=past, use_cache=True)
        past = out.past_key_values
        return out.logits[:, -1, :]

    return feed


def _only(token: int, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[token] = True
    return mask


def context_of(model) -> int:
    """The longest sequence ``model`` takes (GPT-2 ``n_positions``, Llama ``max_position_embeddings``)."""
    config = model.config
    return int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 1 << 30))
