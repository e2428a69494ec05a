"""GPT-2 for inference without transformers: the model as our own torch module, and a lean
incremental decoder with a preallocated KV cache and no per-step framework overhead.

:class:`GPT2` holds the tensors of transformers' ``GPT2LMHeadModel`` under the same names
(``transformer.h.0.attn.c_attn.weight``, ...), so the model folders ``train symbolic`` writes
load into it strictly, and importing it costs no more than torch (transformers' import alone
takes seconds). Training keeps transformers' class.

    model = GPT2(GPT2Shape(vocab_size=336, n_positions=256, n_embd=256, n_head=4, n_layer=4))
    logits = model(input_ids=ids).logits          # ids [B, T] -> [B, T, V]
    decoder = GPT2Decoder(model, batch=16, max_tokens=512)
    logits = decoder.step(ids)      # ids [B, T] (the prompt, then one token at a time) -> [B, V] for the last position

Both give transformers' logits to float rounding (tests check it). :class:`GPT2Decoder` also
runs a transformers GPT-2 (:func:`supports`); other architectures use transformers' forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GPT2Shape:
    """The shape of a GPT-2 (transformers' ``GPT2Config`` names, the attributes our code reads)."""

    vocab_size: int
    n_positions: int
    n_embd: int
    n_head: int
    n_layer: int
    layer_norm_epsilon: float = 1e-5
    model_type: str = "gpt2"
    activation_function: str = "gelu_new"
    tie_word_embeddings: bool = True
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False


class _Conv1D(nn.Module):
    """transformers' ``Conv1D``: ``x @ weight + bias`` with ``weight`` [n_in, n_out]."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.empty(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)   # [N, n_out]
        return out.view(*x.shape[:-1], -1)


class _LayerNorm(nn.Module):
    def __init__(self, width: int, eps: float):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.empty(width)), nn.Parameter(torch.empty(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)


class _Embedding(nn.Module):
    def __init__(self, n: int, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, width))


class _Block(nn.Module):
    def __init__(self, shape: GPT2Shape):
        super().__init__()
        d = shape.n_embd
        self.ln_1 = _LayerNorm(d, shape.layer_norm_epsilon)
        self.attn = nn.Module()
        self.attn.c_attn, self.attn.c_proj = _Conv1D(d, 3 * d), _Conv1D(d, d)
        self.ln_2 = _LayerNorm(d, shape.layer_norm_epsilon)
        self.mlp = nn.Module()
        self.mlp.c_fc, self.mlp.c_proj = _Conv1D(d, 4 * d), _Conv1D(4 * d, d)
        self.n_head = shape.n_head

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = self.attn.c_attn(self.ln_1(x))                                      # [B, T, 3D]
        # each [B, H, T, hd]
        q, k, v = qkv.view(batch, length, 3, self.n_head, width // self.n_head).permute(2, 0, 3, 1, 4)
        if mask is None:
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.attn.c_proj(attended.transpose(1, 2).reshape(batch, length, width))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    """GPT-2 with a tied output projection, for inference (no dropout, no cache objects).

    ``model(input_ids=ids [B, T], attention_mask=mask [B, T] or None).logits`` -> [B, T, V];
    positions count from 0 in every row (right padding, as ``evaluate nll`` pads).
    """

    def __init__(self, shape: GPT2Shape):
        super().__init__()   # tensors are left uninitialised: they are loaded (load_model_folder)
        self.config = shape
        self.transformer = nn.Module()
        self.transformer.wte = _Embedding(shape.vocab_size, shape.n_embd)
        self.transformer.wpe = _Embedding(shape.n_positions, shape.n_embd)
        self.transformer.h = nn.ModuleList(_Block(shape) for _ in range(shape.n_layer))
        self.transformer.ln_f = _LayerNorm(shape.n_embd, shape.layer_norm_epsilon)
        self.lm_head = nn.Module()
        self.tie_weights()

    def tie_weights(self) -> None:
        """The output projection is the input embedding (as GPT-2 is trained)."""
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_ignored):
        length = input_ids.shape[1]
        if length > self.config.n_positions:
            raise ValueError(f"{length} tokens exceed the model's {self.config.n_positions} positions")
        t = self.transformer
        x = t.wte.weight[input_ids] + t.wpe.weight[:length]                                # [B, T, D]
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()   # [T, T]
            keys = attention_mask.bool()[:, None, None, :]                                    # [B, 1, 1, T]
            mask = causal & keys
            mask = mask | ~mask.any(-1, keepdim=True)    # a padding row sees everything (its logits are unused)
        for block in t.h:
            x = block(x, mask)
        return SimpleNamespace(logits=t.ln_f(x) @ self.lm_head.weight.T)               # [B, T, V]


def supports(model) -> bool:
    """True for :class:`GPT2`, and for a transformers GPT-2 LM head model with the standard GELU (tanh) MLP."""
    if isinstance(model, GPT2):
        return not model.training
    config = getattr(model, "config", None)
    return (getattr(config, "model_type", None) == "gpt2" and hasattr(model, "transformer")
            and getattr(config, "activation_function", "gelu_new") in ("gelu_new", "gelu_pytorch_tanh")
            and getattr(config, "scale_attn_weights", True)           # 1/sqrt(head_dim), as SDPA does
            and not getattr(config, "scale_attn_by_inverse_layer_idx", False)
            and not model.training)


class GPT2Decoder:
    """Incremental GPT-2 decoding over ``batch`` sequences of at most ``max_tokens`` tokens.

    Args:
        model: a :class:`GPT2`, or a transformers ``GPT2LMHeadModel``, in eval mode (weights are shared, not copied).
        batch: sequences decoded together.
        max_tokens: the longest sequence (at most the model's ``n_positions``).
    """

    def __init__(self, model, *, batch: int, max_tokens: int):
        config = model.config
        if max_tokens > config.n_positions:
            raise ValueError(f"max_tokens: {max_tokens} exceeds the model's {config.n_positions} positions")
        t = model.transformer
        self.n_heads = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.eps = config.layer_norm_epsilon
        self.wte, self.wpe = t.wte.weight, t.wpe.weight
        self.ln_f = (t.ln_f.weight, t.ln_f.bias)
        self.lm_head = model.lm_head.weight
        self.layers = [(b.ln_1.weight, b.ln_1.bias, b.attn.c_attn.weight, b.attn.c_attn.bias, b.attn.c_proj.weight,
                        b.attn.c_proj.bias, b.ln_2.weight, b.ln_2.bias, b.mlp.c_fc.weight, b.mlp.c_fc.bias,
                        b.mlp.c_proj.weight, b.mlp.c_proj.bias) for b in t.h]
        device, dtype = self.wte.device, self.wte.dtype
        shape = (len(self.layers), batch, self.n_heads, max_tokens, self.head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)     # [L, B, H, max_tokens, head_dim]
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0
        self.max_tokens = max_tokens

    @torch.inference_mode()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed ``ids`` [B, T] after what was fed before; returns the logits of the last position [B, V]."""
        batch, n_new = ids.shape
        start, stop = self.length, self.length + n_new
        if stop > self.max_tokens:
            raise ValueError(f"the sequence would reach {stop} tokens; this decoder holds {self.max_tokens}")
        x = self.wte[ids] + self.wpe[start:stop]                                       # [B, T, D]
        for index, (g1, b1, w_attn, b_attn, w_proj, b_proj, g2, b2, w_fc, b_fc, w_out, b_out) in enumerate(self.layers):
            h = F.layer_norm(x, (x.shape[-1],), g1, b1, self.eps)
            qkv = torch.addmm(b_attn, h.reshape(-1, h.shape[-1]), w_attn)              # [B*T, 3D] (Conv1D: x @ W + b)
            # each [B, H, T, hd]
            q, k, v = qkv.view(batch, n_new, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            self.keys[index, :, :, start:stop] = k
            self.values[index, :, :, start:stop] = v
            keys, values = self.keys[index, :, :, :stop], self.values[index, :, :, :stop]  # [B, H, stop, hd]
            if n_new == 1:
                attended = F.scaled_dot_product_attention(q, keys, values)
            else:   # the new positions see everything before them and each other causally
                mask = torch.ones(n_new, stop, dtype=torch.bool, device=x.device).tril(diagonal=start)
                attended = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
            attended = attended.transpose(1, 2).reshape(batch * n_new, -1)                # [B*T, D]
            x = x + torch.addmm(b_proj, attended, w_proj).view(batch, n_new, -1)
            h = F.layer_norm(x, (x.shape[-1],), g2, b2, self.eps)
            h = F.gelu(torch.addmm(b_fc, h.reshape(batch * n_new, -1), w_fc), approximate="tanh")
            x = x + torch.addmm(b_out, h, w_out).view(batch, n_new, -1)
        last = F.layer_norm(x[:, -1], (x.shape[-1],), *self.ln_f, self.eps)            # [B, D]
        self.length = stop
        return last @ self.lm_head.T                                                     # [B, V]

