"""The two output distributions of the WaveNet: 8-bit mu-law classes and a discretized mixture of logistics.

Each gives a training loss (nats per sample), the network input that a sample becomes, and a
draw from uniform numbers (so the same uniforms give the same samples, whichever generator
draws them). Audio values are floats in [-1, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------- mu-law
def mulaw_encode(audio: torch.Tensor, n_classes: int = 256) -> torch.Tensor:
    """Audio in [-1, 1] (any shape) -> int64 mu-law classes 0 .. n_classes - 1 (same shape)."""
    mu = n_classes - 1
    x = audio.clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)  # companded, [-1, 1]
    return torch.round((y + 1) / 2 * mu).long()


def mulaw_companded(classes: torch.Tensor, n_classes: int = 256, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Classes -> the companded value in [-1, 1] (what the network reads as its input)."""
    return classes.to(dtype) * (2.0 / (n_classes - 1)) - 1.0


def mulaw_decode(classes: torch.Tensor, n_classes: int = 256, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Classes -> audio in [-1, 1]."""
    mu = n_classes - 1
    y = mulaw_companded(classes, n_classes, dtype)
    return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu


# ----------------------------------------------------------------------------- mixture of logistics
def quantize(audio: torch.Tensor, bits: int) -> torch.Tensor:
    """Audio rounded to the ``2 ** bits`` levels spanning [-1, 1] (the mixture's bins)."""
    levels = 2**bits - 1
    return torch.round((audio.clamp(-1.0, 1.0) + 1) / 2 * levels) / levels * 2 - 1


def mol_loss(params: torch.Tensor, target: torch.Tensor, *, bits: int, log_scale_min: float) -> torch.Tensor:
    """Negative log-likelihood (nats) of ``target`` under a discretized mixture of logistics.

    Args:
        params: [B, 3 * M, T] (mixture logits, means, log scales), as the network gives them.
        target: [B, T] audio on the ``2 ** bits`` grid of [-1, 1].
    Returns:
        [B, T] nats (PixelCNN++ / WaveNet-vocoder form: the two end bins take the tails).
    """
    m = params.shape[1] // 3
    logits, means, log_scales = params[:, :m], params[:, m:2 * m], params[:, 2 * m:].clamp(min=log_scale_min)
    x = target[:, None]  # [B, 1, T]
    half_bin = 1.0 / (2**bits - 1)
    centered = x - means
    inv_scale = torch.exp(-log_scales)
    plus = inv_scale * (centered + half_bin)
    minus = inv_scale * (centered - half_bin)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): the lowest bin
    log_one_minus_cdf_minus = -F.softplus(minus)  # the highest bin
    cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    middle = inv_scale * centered
    log_pdf_middle = middle - log_scales - 2 * F.softplus(middle)  # when the bin mass underflows
    inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)),
                        log_pdf_middle - math.log((2**bits - 1) / 2))
    log_probs = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_minus, inner))
    return -torch.logsumexp(log_probs + F.log_softmax(logits, dim=1), dim=1)


# ----------------------------------------------------------------------------- both
def loss(params: torch.Tensor, audio: torch.Tensor, config) -> torch.Tensor:
    """Mean nats per sample of ``audio`` [B, T] under the network's ``params`` [B, n_outputs, T]."""
    params = params.float()
    if config.output == "mulaw":
        return F.cross_entropy(params, mulaw_encode(audio, config.n_classes))
    target = quantize(audio.float(), config.mol_bits)
    return mol_loss(params, target, bits=config.mol_bits, log_scale_min=config.log_scale_min).mean()


def network_input(audio: torch.Tensor, config) -> torch.Tensor:
    """What the network reads for audio samples (same shape): companded classes, or the quantized value."""
    if config.output == "mulaw":
        return mulaw_companded(mulaw_encode(audio, config.n_classes), config.n_classes, audio.dtype)
    return quantize(audio, config.mol_bits)


def _pick(logits: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    """Index drawn from softmax(logits / temperature) by inverse CDF at ``u`` [B]; argmax at temperature 0."""
    if temperature == 0:
        return logits.argmax(-1)
    cdf = torch.softmax(logits / temperature, dim=-1).cumsum(-1)  # [B, K]
    index = (cdf < (u * cdf[:, -1])[:, None]).sum(-1)
    return index.clamp(max=logits.shape[-1] - 1)


def draw(params: torch.Tensor, u: torch.Tensor, config, temperature: float = 1.0
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """One sample per row from the network's output at one time step.

    Args:
        params: [B, n_outputs] output-head values.
        u: [B, 2] uniforms in [0, 1) (component/class choice, logistic draw).
        temperature: sharpness; 1 samples the model, 0 takes the most likely class
            (mu-law) or the mean of the most likely component (mixture).
    Returns:
        (audio value [B], network input for the next step [B]), in ``params``' dtype.
    """
    if config.output == "mulaw":
        classes = _pick(params, u[:, 0], temperature)
        return (mulaw_decode(classes, config.n_classes, params.dtype),
                mulaw_companded(classes, config.n_classes, params.dtype))
    m = config.n_mixtures
    component = _pick(params[:, :m], u[:, 0], temperature)[:, None]  # [B, 1]
    mean = params[:, m:2 * m].gather(1, component)[:, 0]
    log_scale = params[:, 2 * m:].gather(1, component)[:, 0].clamp(min=config.log_scale_min)
    v = u[:, 1].clamp(1e-5, 1 - 1e-5)
    value = mean + torch.exp(log_scale) * temperature * (torch.log(v) - torch.log1p(-v))
    value = quantize(value, config.mol_bits)
    return value, value
