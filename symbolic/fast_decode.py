"""A lean incremental decoder for GPT-2 weights: a preallocated KV cache and no per-step framework overhead.

transformers' forward pass spends most of a batch-1 sampling step on Python bookkeeping
(cache objects, attention dispatch, output classes) for our small models. This module reads the
weights of a ``GPT2LMHeadModel`` (no copy) and runs the same computation directly:

    decoder = GPT2Decoder(model, batch=16, max_tokens=512)
    logits = decoder.step(ids)      # ids [B, T] (the prompt, then one token at a time) -> [B, V] for the last position

The logits equal transformers' to float rounding (a test checks it). Other architectures use
transformers' own forward (:func:`supports`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def supports(model) -> bool:
    """True for a transformers GPT-2 LM head model with the standard GELU (tanh) MLP."""
    config = getattr(model, "config", None)
    return (getattr(config, "model_type", None) == "gpt2" and hasattr(model, "transformer")
            and getattr(config, "activation_function", "gelu_new") in ("gelu_new", "gelu_pytorch_tanh")
            and getattr(config, "scale_attn_weights", True)           # 1/sqrt(head_dim), as SDPA does
            and not getattr(config, "scale_attn_by_inverse_layer_idx", False)
            and not model.training)


class GPT2Decoder:
    """Incremental GPT-2 decoding over ``batch`` sequences of at most ``max_tokens`` tokens.

    Args:
        model: a transformers ``GPT2LMHeadModel`` in eval mode (weights are shared, not copied).
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

