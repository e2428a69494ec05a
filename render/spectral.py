"""The multi-resolution STFT distance (DESIGN.md "Measuring"): one definition for the loss,
the benchmarks and ``evaluate render``.

For each FFT size n in (2048, 1024, 512, 256, 128, 64), with hop n/4 and a Hann window:
``mean|S_a - S_b| + mean|log(S_a + eps) - log(S_b + eps)|`` on magnitudes; the distance is
the mean over sizes. 0 for identical signals; it does not depend on the signals' length.
"""

from __future__ import annotations

import numpy as np

FFT_SIZES = (2048, 1024, 512, 256, 128, 64)
LOG_EPS = 1e-5


def _as_tensor(x):
    import torch

    if isinstance(x, torch.Tensor):
        return x.float()
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def multi_resolution_stft_loss(a, b, *, fft_sizes=FFT_SIZES, log_eps: float = LOG_EPS):
    """Differentiable distance between ``a`` and ``b`` (torch, ``[..., n_samples]``, same shape); scalar tensor."""
    import torch

    if a.shape != b.shape:
        raise ValueError(f"stft distance needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    a2 = a.reshape(-1, a.shape[-1])  # [batch, n_samples]
    b2 = b.reshape(-1, b.shape[-1])
    total = a.new_zeros(())
    for n_fft in fft_sizes:
        window = torch.hann_window(n_fft, device=a.device)
        spec = torch.stft(torch.cat([a2, b2]), n_fft, hop_length=n_fft // 4, window=window,
                          return_complex=True, center=True).abs()  # [2 * batch, n_fft // 2 + 1, n_frames]
        sa, sb = spec[: a2.shape[0]], spec[a2.shape[0]:]
        total = total + (sa - sb).abs().mean() + (torch.log(sa + log_eps) - torch.log(sb + log_eps)).abs().mean()
    return total / len(fft_sizes)


def stft_distance(a, b, *, fft_sizes=FFT_SIZES, log_eps: float = LOG_EPS, mono: bool = True) -> float:
    """The multi-resolution STFT distance between two renders (NumPy or torch arrays).

    Args:
        a, b: audio ``[n_channels, n_samples]`` or ``[n_samples]`` at the same sample rate; the
            shorter one is zero-padded to the longer one's length.
        mono: average channels first (renders of different engines pan differently).

    Returns:
        float >= 0 (0 for identical signals).
    """
    import torch

    ta, tb = _as_tensor(a), _as_tensor(b)
    if mono:
        ta = ta.mean(0) if ta.ndim == 2 else ta
        tb = tb.mean(0) if tb.ndim == 2 else tb
    n = max(ta.shape[-1], tb.shape[-1], max(fft_sizes))
    ta = torch.nn.functional.pad(ta, (0, n - ta.shape[-1]))
    tb = torch.nn.functional.pad(tb, (0, n - tb.shape[-1]))
    with torch.no_grad():
        return float(multi_resolution_stft_loss(ta, tb, fft_sizes=fft_sizes, log_eps=log_eps))
