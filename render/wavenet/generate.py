"""Sampling audio from a WaveNet: the naive generator, the incremental one, and segmented rendering.

Both generators start a segment from ``prefix`` samples of silence (the network sees silence
before a piece starts in training too), then draw ``n`` samples one at a time, each from
:func:`render.wavenet.output.draw` with pre-drawn uniforms, so for the same weights, conditioning
and uniforms they give the same samples:

* :func:`generate_naive` re-runs the whole teacher-forced network on everything generated so
  far for every new sample (quadratic; the reference);
* :class:`IncrementalGenerator` keeps each layer's past inputs in a queue (a ring buffer of
  ``(kernel_size - 1) * dilation`` entries), so a new sample costs one step per layer
  (Fast WaveNet, Paine et al. 2016). Every segment of a batch is one row; the step only reads
  and writes fixed buffers at positions held in a tensor, so it can be captured as a CUDA graph
  or compiled with ``torch.compile``.

Long pieces are cut into segments of ``segment_s`` (each generated with ``warmup_s`` of lead-in),
generated in parallel as a batch (segments of several pieces share a batch), and joined with
equal-power crossfades of ``crossfade_s`` (:func:`generate_pieces`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from . import output
from .conditioning import Conditioning
from .model import WaveNet

ACCELERATIONS = ("none", "compile", "cuda_graph")


def silence_input(model: WaveNet) -> float:
    """The network input that a silent sample (0.0) becomes."""
    return float(output.network_input(torch.zeros(1, dtype=torch.float64), model.config)[0])


# ----------------------------------------------------------------------------- naive
@torch.no_grad()
def generate_naive(model: WaveNet, condition: torch.Tensor, uniforms: torch.Tensor, *, prefix: int,
                   temperature: float = 1.0) -> torch.Tensor:
    """Samples by full re-convolution: the whole network runs again for every new sample.

    Args:
        condition: [B, C, prefix + n] sample-rate conditioning (:meth:`WaveNet.condition`).
        uniforms: [n, B, 2] uniforms in [0, 1), one pair per sample (see :func:`output.draw`).
        prefix: silent samples before the first generated one.
    Returns:
        [B, n] audio in [-1, 1], in the model's dtype.
    """
    n, batch = uniforms.shape[0], uniforms.shape[1]
    inputs = torch.full((batch, 1, prefix + n), silence_input(model), dtype=model.dtype, device=model.device)
    samples = torch.zeros(batch, n, dtype=model.dtype, device=model.device)
    for t in range(n):
        p = prefix + t
        params = model(inputs[:, :, :p + 1], condition[:, :, :p + 1])[:, :, p]  # [B, n_outputs]
        value, following = output.draw(params, uniforms[t].to(params), model.config, temperature)
        samples[:, t] = value
        if p + 1 < prefix + n:
            inputs[:, 0, p + 1] = following
    return samples


# ----------------------------------------------------------------------------- incremental
class IncrementalGenerator:
    """Sample ``n`` steps for a batch of segments with per-layer activation queues.

    Args:
        model: the network (its dtype and device are used).
        condition: [B, C, prefix + n] sample-rate conditioning.
        uniforms: [n, B, 2] uniforms in [0, 1).
        prefix: silent samples before the first generated one (their layer inputs prime the queues).
        temperature: see :func:`output.draw`.
        block_samples: the layers' conditioning is projected this many steps at a time.
        accelerate: ``"none"``, ``"compile"`` (``torch.compile`` of the step) or ``"cuda_graph"``
            (the step captured once and replayed; CUDA only). A graph replays the eager kernels;
            compiled kernels fuse operations, so their samples follow the same distribution but
            are not bit-identical to eager ones (on a CPU, the tiny model: compiling takes about
            30 s, then steps run about 1.4x faster).
    """

    def __init__(self, model: WaveNet, condition: torch.Tensor, uniforms: torch.Tensor, *, prefix: int,
                 temperature: float = 1.0, block_samples: int = 256, accelerate: str = "none"):
        if accelerate not in ACCELERATIONS:
            raise ValueError(f"accelerate must be one of {ACCELERATIONS}, got {accelerate!r}")
        if accelerate == "cuda_graph" and model.device.type != "cuda":
            raise ValueError("accelerate='cuda_graph' needs the model on a CUDA device")
        c = model.config
        self.model, self.config, self.temperature = model, c, float(temperature)
        self.accelerate = accelerate
        self.prefix = int(prefix)
        self.n_steps, self.batch = int(uniforms.shape[0]), int(uniforms.shape[1])
        self.block = max(1, min(int(block_samples), self.n_steps))
        device, dtype = model.device, model.dtype
        self.condition = condition.to(device, dtype)
        self.uniforms = uniforms.to(device, dtype)
        k, R, G = c.kernel_size, c.residual_channels, c.gate_channels
        self.k, self.R, self.G, self.L = k, R, G, c.n_layers
        with torch.no_grad():
            self.w_in = model.input_conv.weight[:, 0, 0].detach().clone()  # [R]
            self.b_in = model.input_conv.bias.detach().clone()
            # conv weight [G, R, k]: tap j reads p - (k - 1 - j) d; rows of W: taps oldest first
            self.gate_w = [conv.weight.detach().permute(2, 1, 0).reshape(k * R, G).contiguous()
                           for conv in model.dilated]
            self.gate_b = [conv.bias.detach().clone() for conv in model.dilated]
            self.rs_w = [rs.weight.detach()[:, :, 0].t().contiguous() for rs in model.res_skip]  # [G / 2, R + S]
            self.rs_b = [rs.bias.detach().clone() for rs in model.res_skip]
            self.hidden_w = model.head_hidden.weight.detach()[:, :, 0].t().contiguous()
            self.hidden_b = model.head_hidden.bias.detach().clone()
            self.out_w = model.head_out.weight.detach()[:, :, 0].t().contiguous()
            self.out_b = model.head_out.bias.detach().clone()
            self.proj_w = model.condition_projection.weight.detach()[:, :, 0].t().contiguous()  # [C, L * G]
        # Ring buffers of all layers in one [sum of lengths, B, R] tensor.
        dilations = np.array(c.dilations, dtype=np.int64)
        lengths = (k - 1) * dilations  # [L]
        base = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.lengths, self.base = lengths, base
        p = self.prefix + np.arange(self.n_steps, dtype=np.int64)[:, None]  # [n, 1] absolute positions
        taps = np.arange(k - 1, 0, -1)  # j = k - 1 .. 1: positions p - j d, oldest first
        offsets = (taps[None, :] * dilations[:, None]).reshape(-1)  # [L * (k - 1)]
        tap_len = np.repeat(lengths, k - 1)
        tap_base = np.repeat(base, k - 1)
        self.read_index = torch.from_numpy(tap_base + np.mod(p - offsets, tap_len)).to(device)  # [n, L * (k - 1)]
        self.write_index = torch.from_numpy(base + np.mod(p, lengths)).to(device)  # [n, L]
        self.queue = torch.zeros(int(lengths.sum()), self.batch, R, dtype=dtype, device=device)
        self.cond_block = torch.zeros(self.block, self.batch, self.L * G, dtype=dtype, device=device)
        self.samples = torch.zeros(self.n_steps, self.batch, dtype=dtype, device=device)
        self.x_in = torch.full((self.batch,), silence_input(model), dtype=dtype, device=device)
        self.t = torch.zeros(1, dtype=torch.int64, device=device)
        self._prime()

    @torch.no_grad()
    def _prime(self) -> None:
        """Fill the queues with the layer inputs of the silent prefix (one teacher-forced pass)."""
        if self.prefix == 0:
            return
        inputs = torch.full((self.batch, 1, self.prefix), silence_input(self.model), dtype=self.model.dtype,
                            device=self.model.device)
        _, layer_inputs = self.model(inputs, self.condition[:, :, :self.prefix], return_layer_inputs=True)
        for i, x in enumerate(layer_inputs):
            length = int(self.lengths[i])
            positions = torch.arange(max(0, self.prefix - length), self.prefix, device=self.model.device)
            slots = int(self.base[i]) + torch.remainder(positions, length)
            self.queue[slots] = x[:, :, positions].permute(2, 0, 1)

    def _fill_block(self, t0: int) -> None:
        """Project the layers' conditioning of steps ``t0 .. t0 + block`` into the block buffer."""
        m = min(self.block, self.n_steps - t0)
        a = self.prefix + t0
        features = self.condition[:, :, a:a + m].permute(2, 0, 1)  # [m, B, C]
        self.cond_block[:m] = torch.matmul(features, self.proj_w)  # [m, B, L * G]

    def _step(self) -> None:
        """One sample for every row: reads and writes only the fixed buffers (graph-capturable)."""
        B, R, G, L, k = self.batch, self.R, self.G, self.L, self.k
        t = self.t
        past = self.queue.index_select(0, self.read_index.index_select(0, t)[0]).view(L, k - 1, B, R)
        cond = self.cond_block.index_select(0, torch.remainder(t, self.block))[0].view(B, L, G)
        u = self.uniforms.index_select(0, t)[0]  # [B, 2]
        x = self.x_in[:, None] * self.w_in + self.b_in  # [B, R]
        inputs = []
        skip = None
        for i in range(L):
            inputs.append(x)
            taps = torch.cat([*past[i].unbind(0), x], dim=1)  # [B, k R]
            gate = torch.addmm(self.gate_b[i] + cond[:, i], taps, self.gate_w[i])  # [B, G]
            z = torch.tanh(gate[:, :G // 2]) * torch.sigmoid(gate[:, G // 2:])
            out = torch.addmm(self.rs_b[i], z, self.rs_w[i])  # [B, R + S]
            x = (x + out[:, :R]) * math.sqrt(0.5)
            skip = out[:, R:] if skip is None else skip + out[:, R:]
        hidden = torch.relu(torch.addmm(self.hidden_b, torch.relu(skip), self.hidden_w))
        params = torch.addmm(self.out_b, hidden, self.out_w)  # [B, n_outputs]
        value, following = output.draw(params, u, self.config, self.temperature)
        self.queue.index_copy_(0, self.write_index.index_select(0, t)[0], torch.stack(inputs))
        self.samples.index_copy_(0, t, value[None])
        self.x_in.copy_(following)
        self.t.add_(1)

    @torch.no_grad()
    def run(self, progress: Callable[[int, int], None] | None = None, *, cpu_threads: int | None = 1) -> torch.Tensor:
        """Generate every step; returns [B, n] audio. ``progress(done, total)`` is called after each block.

        On a CPU the steps run with ``cpu_threads`` torch threads (default 1: a step's operations
        are too small to share, and waiting threads cost more than they give); None keeps the setting.
        """
        saved = torch.get_num_threads()
        if self.model.device.type == "cpu" and cpu_threads:
            torch.set_num_threads(cpu_threads)
        try:
            return self._run(progress)
        finally:
            torch.set_num_threads(saved)

    def _run(self, progress: Callable[[int, int], None] | None) -> torch.Tensor:
        step = self._step
        if self.accelerate == "compile":
            step = torch.compile(self._step)
        for t0 in range(0, self.n_steps, self.block):
            self._fill_block(t0)
            m = min(self.block, self.n_steps - t0)
            if self.accelerate == "cuda_graph" and step is self._step:
                step = self._capture()
            for _ in range(m):
                step()
            if progress is not None:
                progress(t0 + m, self.n_steps)
        return self.samples.t()

    def _capture(self) -> Callable[[], None]:
        """The step as a replayable CUDA graph (warm-up on a side stream; the state is restored after it)."""
        saved = [self.queue.clone(), self.samples.clone(), self.x_in.clone(), self.t.clone()]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._step()
        torch.cuda.current_stream().wait_stream(stream)
        for tensor, value in zip((self.queue, self.samples, self.x_in, self.t), saved, strict=True):
            tensor.copy_(value)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        return graph.replay


def generate_incremental(model: WaveNet, condition: torch.Tensor, uniforms: torch.Tensor, *, prefix: int,
                         temperature: float = 1.0, block_samples: int = 256, accelerate: str = "none",
                         progress: Callable[[int, int], None] | None = None, cpu_threads: int | None = 1
                         ) -> torch.Tensor:
    """Incremental sampling (same arguments and result as :func:`generate_naive`)."""
    generator = IncrementalGenerator(model, condition, uniforms, prefix=prefix, temperature=temperature,
                                     block_samples=block_samples, accelerate=accelerate)
    return generator.run(progress, cpu_threads=cpu_threads)


# ----------------------------------------------------------------------------- segments
@dataclass
class GenerationSettings:
    """How pieces are sampled (validated).

    Attributes:
        temperature: 1 samples the model; lower is more conservative; 0 is greedy.
        segment_s: seconds per independently generated segment (the unit of parallel work).
        crossfade_s: equal-power crossfade between neighbouring segments.
        warmup_s: lead-in generated before each segment (>= crossfade_s); the crossfade is its end.
        max_batch: segments generated together at most.
        block_samples: steps per conditioning block (and between progress reports).
        seed: the uniforms of segment ``j`` of any piece come from ``(seed, j)``.
        accelerate: ``none``, ``compile`` or ``cuda_graph`` (see :class:`IncrementalGenerator`).
    """

    temperature: float = 1.0
    segment_s: float = 1.0
    crossfade_s: float = 0.05
    warmup_s: float = 0.2
    max_batch: int = 32
    block_samples: int = 256
    seed: int = 0
    accelerate: str = "none"

    def __post_init__(self) -> None:
        checks = {
            "temperature": 0 <= self.temperature <= 10, "segment_s": 0.01 <= self.segment_s <= 3600,
            "crossfade_s": 0 <= self.crossfade_s < self.segment_s, "warmup_s": self.crossfade_s <= self.warmup_s <= 60,
            "max_batch": 1 <= self.max_batch <= 65536, "block_samples": 1 <= self.block_samples <= 1 << 20,
            "seed": 0 <= self.seed < 2**63, "accelerate": self.accelerate in ACCELERATIONS,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"GenerationSettings.{name} is out of range: got {getattr(self, name)!r}")


def plan_segments(n_samples: int, segment_samples: int, warmup_samples: int) -> list[tuple[int, int]]:
    """``(first, end)`` generated sample ranges: segment ``j`` owns ``[j H, (j + 1) H)`` and starts ``warmup`` early."""
    count = max(1, math.ceil(n_samples / segment_samples))
    return [(max(0, j * segment_samples - warmup_samples), min((j + 1) * segment_samples, n_samples))
            for j in range(count)]


def segment_uniforms(seed: int, index: int, n: int) -> torch.Tensor:
    """[n, 2] float64 uniforms of segment ``index`` (a function of the seed and the index only)."""
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint64)
    generator = torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))
    return torch.rand(n, 2, generator=generator, dtype=torch.float64)


class _Joiner:
    """Joins one piece's segments (given in order) into consecutive output blocks."""

    def __init__(self, n_samples: int, segment_samples: int, crossfade_samples: int):
        self.n, self.hop, self.fade = n_samples, segment_samples, crossfade_samples
        r = (np.arange(crossfade_samples) + 0.5) / max(crossfade_samples, 1)
        self.fade_in = np.sin(0.5 * np.pi * r).astype(np.float32)
        self.fade_out = np.cos(0.5 * np.pi * r).astype(np.float32)
        self.tail: np.ndarray | None = None  # the previous segment's last `fade` samples

    def add(self, index: int, first: int, audio: np.ndarray) -> np.ndarray:
        """The output block that segment ``index`` (generated from sample ``first``) completes."""
        start = index * self.hop
        end = min(start + self.hop, self.n)
        parts = []
        if index > 0 and self.fade:
            a = start - self.fade - first
            parts.append(self.tail * self.fade_out + audio[a:a + self.fade] * self.fade_in)
        body_end = end if end == self.n else end - self.fade
        parts.append(audio[start - first:body_end - first])
        if end < self.n and self.fade:
            self.tail = audio[end - self.fade - first:end - first]
        return np.concatenate(parts).astype(np.float32)


def generate_pieces(model: WaveNet, pieces: list[tuple[Conditioning, int]], settings: GenerationSettings,
                    progress: Callable[[dict], None] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Audio of several pieces at the model's native rate, their segments batched together.

    Args:
        pieces: ``(conditioning, n_samples)`` per piece.
        progress: called after each block of steps with a dict: ``done_steps`` and ``total_steps``
            (over all batches), ``segments`` (rows of the current batch), ``elapsed_s``.
    Yields:
        ``(piece index, float32 block)``; each piece's blocks come in order and concatenate to
        exactly its ``n_samples``.
    """
    c = model.config
    sr = c.sample_rate_hz
    hop = max(1, round(settings.segment_s * sr))
    fade = min(round(settings.crossfade_s * sr), hop - 1)
    warmup = max(fade, round(settings.warmup_s * sr))
    prefix = c.receptive_field
    work = []  # (piece, segment index, first, end)
    joiners = []
    for p, (_, n_samples) in enumerate(pieces):
        joiners.append(_Joiner(n_samples, hop, fade))
        work += [(p, j, a, b) for j, (a, b) in enumerate(plan_segments(n_samples, hop, warmup))]
    batches = [work[i:i + settings.max_batch] for i in range(0, len(work), settings.max_batch)]
    steps = [max(b - a for _, _, a, b in batch) for batch in batches]
    started = time.perf_counter()
    for number, (batch, n_steps) in enumerate(zip(batches, steps, strict=True)):
        with torch.no_grad():
            condition = torch.stack([model.condition(pieces[p][0], a - prefix, prefix + n_steps)
                                     for p, _, a, _ in batch])  # [B, C, prefix + n_steps]
        uniforms = torch.full((n_steps, len(batch), 2), 0.5, dtype=torch.float64)
        for row, (_, j, a, b) in enumerate(batch):
            uniforms[:b - a, row] = segment_uniforms(settings.seed, j, b - a)
        report = None
        if progress is not None:
            report = _reporter(progress, sum(steps[:number]), sum(steps), len(batch), started)
        audio = generate_incremental(model, condition, uniforms, prefix=prefix, temperature=settings.temperature,
                                     block_samples=settings.block_samples, accelerate=settings.accelerate,
                                     progress=report)
        audio = audio.float().cpu().numpy()
        for row, (p, j, a, b) in enumerate(batch):
            yield p, joiners[p].add(j, a, audio[row, :b - a])


def _reporter(progress: Callable[[dict], None], before: int, total: int, size: int, started: float):
    def report(done: int, _batch_total: int) -> None:
        progress({"done_steps": before + done, "total_steps": total, "segments": size,
                  "elapsed_s": time.perf_counter() - started})

    return report
