"""The conditional WaveNet: dilated causal convolutions in stacks, gated activations, residual and
skip connections, local conditioning on the piano roll upsampled by learned transposed convolutions.

Time convention: the network's input at position ``p`` is the audio sample ``p - 1`` (as
:func:`render.wavenet.output.network_input` gives it); its output at ``p`` is the distribution
of sample ``p``. A causal layer with dilation ``d`` and kernel ``k`` reads its input at
``p, p - d, ..., p - (k - 1) d`` (zeros before the start of the sequence).

Conditioning: each instrument's piano-roll planes ``[3 * 128, n_frames]`` go through a
convolution (kernel 3 frames) plus the instrument's embedding, ``relu(W x + c) - relu(c)`` (so an
instrument's silence encodes to exactly zero), are summed over instruments, go through one more
frame-rate convolution, then through transposed convolutions (stride = each upsample factor,
kernel = twice the stride) to the sample rate; a 1x1 projection gives every layer's share.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..instruments import N_INSTRUMENTS
from .conditioning import N_PITCHES, N_PLANES, Conditioning
from .config import WaveNetConfig

CONDITION_MARGIN_FRAMES = 4  # frames either side that reach a sample through the conditioning network


class WaveNet(nn.Module):
    """Piano-roll-conditioned WaveNet (see the module docstring)."""

    def __init__(self, config: WaveNetConfig):
        super().__init__()
        self.config = config
        c = config
        C, R, G, S = c.condition_channels, c.residual_channels, c.gate_channels, c.skip_channels
        self.embedding = nn.Embedding(N_INSTRUMENTS, c.embedding_size)
        self.instrument_bias = nn.Linear(c.embedding_size, C)
        self.encoder = nn.Conv1d(N_PLANES * N_PITCHES, C, 3, padding=1)
        self.context = nn.Conv1d(C, C, 3, padding=1)
        self.upsample = nn.ModuleList(nn.ConvTranspose1d(C, C, 2 * s, stride=s) for s in c.upsample_factors)
        self.input_conv = nn.Conv1d(1, R, 1)
        self.dilated = nn.ModuleList(nn.Conv1d(R, G, c.kernel_size, dilation=d) for d in c.dilations)
        self.condition_projection = nn.Conv1d(C, c.n_layers * G, 1, bias=False)
        self.res_skip = nn.ModuleList(nn.Conv1d(G // 2, R + S, 1) for _ in range(c.n_layers))
        self.head_hidden = nn.Conv1d(S, S, 1)
        self.head_out = nn.Conv1d(S, c.n_outputs, 1)

    @property
    def device(self) -> torch.device:
        return self.head_out.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.head_out.weight.dtype

    # ------------------------------------------------------------------ conditioning
    def condition(self, conditioning: Conditioning, start_sample: int, n_samples: int) -> torch.Tensor:
        """Sample-rate conditioning features of samples ``[start_sample, start_sample + n_samples)``: [C, n_samples].

        Positions before 0 or after the piano roll are silence. The result for a sample does not
        depend on the window it is computed in (the window has ``CONDITION_MARGIN_FRAMES`` of context).
        """
        hop = self.config.hop_samples
        first = start_sample // hop - CONDITION_MARGIN_FRAMES
        last = -(-(start_sample + n_samples) // hop) + CONDITION_MARGIN_FRAMES
        planes = torch.from_numpy(conditioning.window(first, last - first)).to(self.device, self.dtype)
        instruments = torch.from_numpy(conditioning.instruments).to(self.device)
        features = self.encode(planes, instruments)  # [C, n_frames]
        up = self.upsample_features(features[None])[0]  # [C, n_frames * hop]
        offset = start_sample - first * hop
        return up[:, offset:offset + n_samples]

    def encode(self, planes: torch.Tensor, instruments: torch.Tensor) -> torch.Tensor:
        """Frame-rate features from planes [n_instruments, 384, F] and instruments [n_instruments]: [C, F]."""
        n_frames = planes.shape[-1]
        if planes.shape[0] == 0:
            summed = planes.new_zeros(self.config.condition_channels, n_frames)
        else:
            bias = self.instrument_bias(self.embedding(instruments))[:, :, None]  # [I, C, 1]
            encoded = self.encoder(planes)  # [I, C, F]
            summed = (F.relu(encoded + bias) - F.relu(self.encoder.bias[None, :, None] + bias)).sum(0)  # [C, F]
        return F.leaky_relu(self.context(summed[None])[0], 0.2)

    def upsample_features(self, features: torch.Tensor) -> torch.Tensor:
        """[B, C, F] at the frame rate -> [B, C, F * hop] at the sample rate (sample ``n`` in frame ``n // hop``)."""
        x = features
        for i, (layer, s) in enumerate(zip(self.upsample, self.config.upsample_factors, strict=True)):
            n = x.shape[-1]
            x = layer(x)[..., s // 2: s // 2 + n * s]  # [B, C, (n + 1) s] -> [B, C, n s]
            if i + 1 < len(self.upsample):
                x = F.leaky_relu(x, 0.2)
        return x

    def project_condition(self, condition: torch.Tensor) -> torch.Tensor:
        """Every layer's conditioning input: [B, C, T] -> [B, n_layers * gate_channels, T]."""
        return self.condition_projection(condition)

    # ------------------------------------------------------------------ the network
    def forward(self, inputs: torch.Tensor, condition: torch.Tensor, *, return_layer_inputs: bool = False):
        """Teacher-forced pass.

        Args:
            inputs: [B, 1, T] network inputs (input ``p`` = sample ``p - 1``).
            condition: [B, C, T] sample-rate conditioning (:meth:`condition`).
            return_layer_inputs: also return each layer's input [B, R, T] (to prime generation).
        Returns:
            [B, n_outputs, T] output-head values (logits, or mixture parameters).
        """
        c = self.config
        G, R = c.gate_channels, c.residual_channels
        x = self.input_conv(inputs)  # [B, R, T]
        projected = self.project_condition(condition)  # [B, L * G, T]
        skip = None
        layer_inputs = []
        for i, (conv, res_skip) in enumerate(zip(self.dilated, self.res_skip, strict=True)):
            layer_inputs.append(x)
            pad = (c.kernel_size - 1) * conv.dilation[0]
            gate = conv(F.pad(x, (pad, 0))) + projected[:, i * G:(i + 1) * G]  # [B, G, T]
            z = torch.tanh(gate[:, :G // 2]) * torch.sigmoid(gate[:, G // 2:])  # [B, G / 2, T]
            out = res_skip(z)  # [B, R + S, T]
            x = (x + out[:, :R]) * math.sqrt(0.5)
            skip = out[:, R:] if skip is None else skip + out[:, R:]
        params = self.head_out(F.relu(self.head_hidden(F.relu(skip))))
        return (params, layer_inputs) if return_layer_inputs else params


def count_parameters(model: nn.Module) -> int:
    return int(sum(np.prod(p.shape) for p in model.parameters()))
