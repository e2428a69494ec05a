"""The symbolic model: a decoder-only transformer from transformers, built from a dataclass.

Training uses transformers' classes; inference of a GPT-2 loads the same tensors into our own
torch module (:class:`symbolic.fast_decode.GPT2`), so ``compose`` never imports transformers.

A model folder (what ``train symbolic`` writes and ``compose`` reads) holds::

    config.json         transformers' config (GPT-2 or Llama), with our ModelConfig under "ostinato"
    model.safetensors   the weights (no pickle anywhere)
    tokenizer.json      the tokenizer (symbolic.tokenizers)
    model_card.md       how it was trained: command, data, steps, time, held-out figures

:func:`load_model_folder` loads any such folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from ostinato.events.errors import InputError

ARCHITECTURES = ("gpt2", "llama")


@dataclass(frozen=True)
class ModelConfig:
    """Size and kind of the transformer.

    Attributes:
        architecture: ``"gpt2"`` (learned positions, GELU MLP) or ``"llama"`` (RoPE, RMSNorm, SwiGLU).
        n_layers: transformer blocks.
        d_model: width of the residual stream (must divide by ``n_heads``).
        n_heads: attention heads.
        context: the longest sequence in tokens (positions for GPT-2).
        dropout: dropout on the residual stream and embeddings (0 when sampling).
        attention_dropout: dropout on the attention weights; None: ``dropout``. At 0 the attention runs as
            one fused kernel (PyTorch's scaled_dot_product_attention, no [heads, T, T] matrix and no random
            mask over it): on a CPU the 6 x 288 folk model's training steps run about 1.5x as fast
            (``benchmarks/train_speed.py``).
    """

    architecture: str = "gpt2"
    n_layers: int = 4
    d_model: int = 256
    n_heads: int = 4
    context: int = 512
    dropout: float = 0.1
    attention_dropout: float | None = None

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture: expected one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}")
        for name in ("n_layers", "d_model", "n_heads", "context"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model: {self.d_model} does not divide into n_heads={self.n_heads}")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if name == "attention_dropout" and value is None:   # the same as dropout
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name}: expected 0 <= {name} < 1, got {value!r}")

    @property
    def attention_pdrop(self) -> float:
        """The attention weights' dropout (``attention_dropout``, else ``dropout``)."""
        return self.dropout if self.attention_dropout is None else self.attention_dropout

    @classmethod
    def from_json(cls, data: dict) -> ModelConfig:
        """From a dict; unknown fields are named in the error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config field(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**data)


PRESETS = {
    "tiny": ModelConfig(n_layers=2, d_model=64, n_heads=2, context=256, dropout=0.0),
    "small": ModelConfig(n_layers=4, d_model=256, n_heads=4, context=512, dropout=0.1),
    "base": ModelConfig(n_layers=8, d_model=512, n_heads=8, context=1024, dropout=0.1),
}


def model_config(name_or_path: str) -> ModelConfig:
    """A preset by name (``tiny``, ``small``, ``base``) or a JSON file of ModelConfig fields."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise InputError(name_or_path, f"not a model config preset ({', '.join(PRESETS)}) nor a JSON file")
    try:
        return ModelConfig.from_json(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not JSON ({exc})") from None
    except (ValueError, TypeError) as exc:
        raise InputError(path, str(exc)) from None


def _quiet_transformers() -> None:
    """transformers' own progress bars and notices would interleave with ours."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def build_model(config: ModelConfig, vocab_size: int, *, pad_id: int = 0, bos_id: int = 1, eos_id: int = 2):
    """A freshly initialised causal LM (transformers) for ``config`` and a vocabulary of ``vocab_size``."""
    import transformers

    common = {"vocab_size": vocab_size, "pad_token_id": pad_id, "bos_token_id": bos_id, "eos_token_id": eos_id}
    if config.architecture == "gpt2":
        hf = transformers.GPT2Config(
            n_layer=config.n_layers, n_embd=config.d_model, n_head=config.n_heads, n_positions=config.context,
            resid_pdrop=config.dropout, embd_pdrop=config.dropout, attn_pdrop=config.attention_pdrop,
            # GPT-2's tanh GELU as one PyTorch kernel ("gelu_new" is the same formula in five element-wise ops)
            activation_function="gelu_pytorch_tanh", **common)
        model = transformers.GPT2LMHeadModel(hf)
    else:
        hf = transformers.LlamaConfig(
            num_hidden_layers=config.n_layers, hidden_size=config.d_model, num_attention_heads=config.n_heads,
            num_key_value_heads=config.n_heads, intermediate_size=4 * config.d_model,
            max_position_embeddings=config.context, attention_dropout=config.attention_pdrop, tie_word_embeddings=True,
            **common)
        model = transformers.LlamaForCausalLM(hf)
    model.config.ostinato = asdict(config)
    return model


def grow_context(model, tokenizer, config: ModelConfig, context: int):
    """``(model, config)`` with the context grown to ``context`` tokens: the same weights, and for GPT-2 the
    learned positions stretched over the new context (position interpolation: new position ``i`` starts as
    old position ``i * (old - 1) / (new - 1)``, between its two neighbours), so every position is one the
    model has learned and tokens near each other stay near; training takes it from there. Repeating the
    old positions instead (``i mod old``) keeps the first ``old`` positions exact but makes a token past
    them look like one at the start: chorale-midi grown from 512 to 1,024 tokens predicted tokens 512-767
    of held-out chorales at 2.97 bits/token repeated and 1.00 stretched (0.88-1.00 before them; 300 steps
    of training took the repeated ones only to 1.52). Llama's rotary positions need no weights.
    ValueError for a shorter context."""
    if context < config.context:
        raise ValueError(f"a context can grow, not shrink ({config.context} -> {context} tokens)")
    if context == config.context:
        return model, config
    grown = replace(config, context=context)
    fresh = build_model(grown, len(tokenizer), pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id,
                        eos_id=tokenizer.eos_id)
    state = dict(model.state_dict())
    if grown.architecture == "gpt2":
        state["transformer.wpe.weight"] = stretched_positions(state.pop("transformer.wpe.weight"), context)
    fresh.load_state_dict(state)
    fresh.tie_weights()
    fresh.train(model.training)
    return fresh, grown


def grow_layers(model, tokenizer, config: ModelConfig, n_layers: int):
    """``(model, config)`` deepened to ``n_layers`` blocks that compute what the old ones did: each new block
    is a copy of the block before it with its two output projections (attention's and the MLP's, weights and
    biases) zero, so it adds nothing to the residual stream until training moves them (LLaMA Pro's block
    expansion, Wu et al. 2024). New blocks are spread among the old ones: old block ``i`` is followed by
    ``(i + 1) * added // old - i * added // old`` new ones, so 4 -> 6 puts one after the second and the fourth.
    A shallow model that has learned its data then trains on with more capacity instead of from random
    weights. ValueError for fewer layers."""
    if n_layers < config.n_layers:
        raise ValueError(f"a model can gain layers, not lose them ({config.n_layers} -> {n_layers})")
    if n_layers == config.n_layers:
        return model, config
    old, added = config.n_layers, n_layers - config.n_layers
    grown = replace(config, n_layers=n_layers)
    fresh = build_model(grown, len(tokenizer), pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id,
                        eos_id=tokenizer.eos_id)
    prefix = "transformer.h." if config.architecture == "gpt2" else "model.layers."
    zeroed = (("attn.c_proj.", "mlp.c_proj.") if config.architecture == "gpt2"
              else ("self_attn.o_proj.", "mlp.down_proj."))
    source = []                                     # source[j]: (old block copied into new block j, is it new)
    for i in range(old):
        source.append((i, False))
        source += [(i, True)] * ((i + 1) * added // old - i * added // old)
    state, blocks = {}, {}                          # blocks[i]: old block i's tensors by their name inside it
    for name, tensor in model.state_dict().items():
        if name.startswith(prefix):
            index, rest = name[len(prefix):].split(".", 1)
            blocks.setdefault(int(index), {})[rest] = tensor
        else:
            state[name] = tensor
    for j, (i, is_new) in enumerate(source):
        for rest, tensor in blocks[i].items():
            copy = tensor.clone()
            if is_new and rest.startswith(zeroed):
                copy.zero_()
            state[f"{prefix}{j}.{rest}"] = copy
    fresh.load_state_dict(state)
    fresh.tie_weights()
    fresh.train(model.training)
    return fresh, grown


def stretched_positions(old, n: int):
    """``old`` learned position embeddings [m, d] linearly interpolated to ``n`` rows: row ``i`` lies at old
    position ``i * (m - 1) / (n - 1)``; the first and last rows are the old first and last."""
    import torch

    m = old.shape[0]
    at = torch.arange(n, dtype=torch.float64) * ((m - 1) / max(1, n - 1))
    below = at.floor().long().clamp(max=m - 1)
    above = (below + 1).clamp(max=m - 1)
    weight = (at - below).to(old.dtype)[:, None]
    return (old[below] * (1 - weight) + old[above] * weight).contiguous()


def save_model_folder(model, tokenizer, folder: str | os.PathLike) -> None:
    """Write ``config.json``, ``model.safetensors`` and ``tokenizer.json`` into ``folder``.

    Each file is written to a temporary name first and moved into place, so a crash leaves the
    previous files whole.
    """
    from ostinato.events.atomic import output_mode

    from .tokenizers import save_tokenizer

    _quiet_transformers()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / ".staging"
    staging.mkdir(exist_ok=True)
    model.save_pretrained(staging, safe_serialization=True)
    for name in ("config.json", "model.safetensors"):
        os.chmod(staging / name, output_mode())   # safetensors writes 0600; our outputs get the usual mode
        os.replace(staging / name, folder / name)
    for leftover in staging.iterdir():
        leftover.unlink()
    staging.rmdir()
    save_tokenizer(tokenizer, folder / "tokenizer.json")


def check_new_folder(folder: Path, out: Path) -> None:
    """InputError unless ``out`` may become a model folder derived from ``folder``: new, or an empty folder,
    and not ``folder`` itself."""
    if out.exists() and (out.resolve() == folder.resolve() or not out.is_dir() or any(out.iterdir())):
        raise InputError(out, "the new model folder must be a new or empty folder (not the model's own)")


def write_derived_folder(folder: Path, out: Path, fill, *, replaced: tuple[str, ...] = ()) -> None:
    """Write the new model folder ``out`` (:func:`check_new_folder`) from ``folder``: its files copied (but
    ``replaced``), then ``fill(staging)`` writes the rest, all under a temporary name renamed into place at
    the end, so a failure leaves no folder. ``folder`` itself is only read."""
    import shutil
    import tempfile

    check_new_folder(folder, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name in sorted(p.name for p in folder.iterdir() if p.is_file()):
            if name not in replaced:
                shutil.copyfile(folder / name, staging / name)
        fill(staging)
        if out.exists():
            out.rmdir()   # empty (checked above)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


MODEL_TYPES = {"gpt2": "gpt2", "llama": "llama"}   # our architectures and transformers' model_type of each


def read_model_config(folder: str | os.PathLike) -> ModelConfig:
    """The :class:`ModelConfig` of a model folder (its ``config.json``'s ``ostinato`` section), without
    loading the weights; the file's ``model_type`` must be the architecture's.

    Raises:
        InputError: no config.json, or one that is not ours, named.
    """
    folder = Path(folder)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (folder / name).exists() and not (folder / name).is_symlink():
            raise InputError(folder, f"not a model folder (no {name})")
        if not (folder / name).is_file():   # a folder, a FIFO, a device, a broken link
            raise InputError(folder / name, "not a regular file")
    path = folder / "config.json"
    try:
        data = json.loads(path.read_text())
        config = ModelConfig.from_json(data["ostinato"])
    except Exception as exc:  # JSON, a missing section, a bad value
        raise InputError(path, f"not an ostinato model config: {' '.join(str(exc).split())[:300]}") from None
    if data.get("model_type") != MODEL_TYPES[config.architecture]:
        raise InputError(path, f"model_type {data.get('model_type')!r} is not ostinato's {config.architecture} "
                               f"({MODEL_TYPES[config.architecture]!r})")
    return config


def load_model_folder(folder: str | os.PathLike, *, device: str = "cpu", inference: bool = False):
    """Load ``(model, tokenizer, config)`` from a model folder; nothing in it is executed or unpickled.

    The model class is built by us from the folder's own ``ostinato`` config section (transformers'
    ``auto_map``, ``trust_remote_code`` and the rest of config.json are never consulted), and the
    safetensors tensors are loaded into it strictly: a missing, unexpected or mis-shaped tensor, or
    a ``model_type`` that is not the architecture's, is refused.

    Args:
        inference: for sampling and scoring only: a GPT-2 is then our own
            :class:`symbolic.fast_decode.GPT2` in eval mode (the same tensors; transformers is not
            imported), and the folder's memory of its training tunes, if it has one, is the model's
            ``memory`` (:mod:`symbolic.memory`; None without). Otherwise (training) transformers' model class.

    Raises:
        InputError: a missing, corrupt or foreign file, named, in one line.
    """
    from safetensors.torch import load_file

    from .tokenizers import load_tokenizer

    folder = Path(folder)
    config = read_model_config(folder)
    tokenizer = load_tokenizer(folder / "tokenizer.json")
    try:
        state = load_file(folder / "model.safetensors")
    except Exception as exc:  # safetensors raises its own kinds for a torn or foreign file
        raise InputError(folder, f"cannot load the model: {' '.join(str(exc).split())[:300]}") from None
    if inference and config.architecture == "gpt2":
        from .fast_decode import GPT2, GPT2Shape

        model = GPT2(GPT2Shape(vocab_size=len(tokenizer), n_positions=config.context, n_embd=config.d_model,
                               n_head=config.n_heads, n_layer=config.n_layers))   # uninitialised: the file fills it
        check_state(model, state, folder)
        model.load_state_dict(state, strict=False, assign=True)   # every tensor checked above
        model.tie_weights()
        model.memory = _memory(folder, tokenizer)
        return model.to(device).eval(), tokenizer, config
    _quiet_transformers()
    model = build_model(config, len(tokenizer), pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id,
                        eos_id=tokenizer.eos_id)
    check_state(model, state, folder)
    model.load_state_dict(state, strict=False)   # every tensor checked above; tied ones are tied again
    model.tie_weights()
    model.to(device).eval()
    if inference:
        model.memory = _memory(folder, tokenizer)
    return model, tokenizer, config


def _memory(folder: Path, tokenizer):
    """The folder's memory of its training tunes (:mod:`symbolic.memory`), or None."""
    from .memory import load_memory

    return load_memory(folder, tokenizer)


def check_state(model, state: dict, folder: Path) -> None:
    """Raise InputError unless ``state`` holds exactly ``model``'s tensors with their shapes (the output
    projection may be left out when it is tied to the input embedding, as transformers saves it)."""
    expected = model.state_dict()
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    missing = sorted(k for k in expected if k not in state and k not in tied)
    unexpected = sorted(k for k in state if k not in expected)
    shapes = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})" for k in state
                    if k in expected and tuple(state[k].shape) != tuple(expected[k].shape))
    def listed(what: str, names: list[str]) -> str:
        return f"{len(names)} {what} tensor(s) ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"

    problems = [listed(what, names) for what, names in (("missing", missing), ("unexpected", unexpected),
                                                         ("mis-shaped", shapes)) if names]
    if problems:
        raise InputError(folder, "cannot load the model: model.safetensors does not fit its config and tokenizer: "
                                 + "; ".join(problems))
