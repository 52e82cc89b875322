"""The loss over packed rows: summed over supervised tokens, divided by the supervised tokens of the whole step,
computed without the full (rows × max_length × vocabulary) logits.

Averaging per micro-batch would weight a token of a short micro-batch more than one of a long one; with packed
rows and gradient accumulation the honest number is sum(token losses) / (supervised tokens in the accumulated
batch), which is what `PackedTrainer.compute_loss` returns per micro-batch so the accumulated gradients add up to it.

The full logits, in fp16 and upcast to fp32 with their gradients, cost ~14 bytes per (token, vocabulary entry):
~16 GiB at micro-batch 4, 2,048 tokens and Qwen3's 151,936 entries (`analyze.memory` counts them).
`chunked_loss_sum` takes the final hidden states of the labelled positions only and makes logits for `chunk` of
them at a time, in forward and again in backward, so the loss costs a few hundred MB whatever the vocabulary.
Both give the same sum:

>>> import torch
>>> hidden, head = torch.randn(1, 3, 8, dtype=torch.float64), torch.randn(5, 8, dtype=torch.float64)
>>> labels = torch.tensor([[-100, 2, 4]])              # positions 0 and 1 predict tokens 2 and 4
>>> full, n = token_loss_sum(hidden @ head.T, labels)
>>> chunked, m = chunked_loss_sum(hidden, head, labels, chunk=1)
>>> n.item(), m.item(), torch.allclose(full, chunked)
(2, 2, True)
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from analyze.memory import chunk_tokens
from train.rows import IGNORE


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of next-token cross-entropies over labelled positions, and their count, from the full logits.

    logits: (B, L, V); labels: (B, L), unshifted (position t predicts labels[t + 1]).

    >>> logits = torch.zeros(1, 3, 4)                      # uniform over 4 tokens: each token costs ln 4
    >>> labels = torch.tensor([[-100, 2, -100]])           # one supervised token (position 1, predicted at 0)
    >>> total, count = token_loss_sum(logits, labels)
    >>> round(total.item(), 4), count.item()
    (1.3863, 1)
    """
    shift_logits = logits[:, :-1, :].float()  # (B, L-1, V), fp32 so fp16 logits do not overflow the softmax
    shift_labels = labels[:, 1:]  # (B, L-1)
    total = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    return total, (shift_labels != IGNORE).sum()


@dataclass(frozen=True)
class LogitMap:
    """What a model does to `hidden @ head.T` before the softmax (its config says): Gemma 2/3 soft-cap the
    logits, Cohere multiplies and Granite divides them by a constant. Identity for most models.

    >>> LogitMap(softcap=30.0)(torch.tensor([300.0])).round()   # 30 · tanh(300 / 30)
    tensor([30.])
    """

    scale: float = 1.0
    softcap: float | None = None

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.scale != 1.0:
            logits = logits * self.scale
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    @classmethod
    def from_config(cls, config) -> LogitMap:
        get = getattr(config, "get_text_config", None)
        text = get() if callable(get) else config
        scale = float(getattr(text, "logit_scale", None) or 1.0)
        if getattr(text, "logits_scaling", None):
            scale /= float(text.logits_scaling)
        return cls(scale=scale, softcap=getattr(text, "final_logit_softcapping", None) or None)


def chunked_loss_sum(
    hidden: torch.Tensor,
    head: torch.Tensor,
    labels: torch.Tensor,
    logit_map: Callable[[torch.Tensor], torch.Tensor] = LogitMap(),
    chunk: int | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`token_loss_sum(logit_map(hidden @ head.T), labels)` without the full logits.

    hidden: (B, L, H), the model's final (normed) hidden states; head: (V, H), the output embedding's weight.
    The product is taken in `dtype` — the run's compute dtype, what autocast gives the model's own lm_head (the
    loss runs outside the model's forward, where accelerate's autocast is off) — and the softmax in fp32.
    """
    mask = labels[:, 1:] != IGNORE
    picked = hidden[:, :-1][mask]  # (N, H): the positions that predict a supervised token
    targets = labels[:, 1:][mask]
    dtype = dtype or _matmul_dtype(hidden)
    total = _ChunkedCrossEntropy.apply(
        picked.to(dtype), head, targets, logit_map, chunk or chunk_tokens(head.shape[0]), dtype
    )
    return total, mask.sum()


def _matmul_dtype(t: torch.Tensor) -> torch.dtype:
    device = t.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return t.dtype


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of (N, H) hidden rows against a (V, H) head, `chunk` rows at a time; the backward
    recomputes each chunk's logits instead of keeping them (memory: one chunk's logits, never N × V)."""

    @staticmethod
    def forward(ctx, hidden, head, targets, logit_map, chunk, dtype):
        weight = head.detach().to(dtype)  # one cast, as autocast makes for lm_head (fp32 after kbit preparation)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], chunk):
                logits = logit_map((hidden[start : start + chunk] @ weight.T).float())
                total += F.cross_entropy(logits, targets[start : start + chunk], reduction="sum")
        ctx.save_for_backward(hidden, head, targets)
        ctx.logit_map, ctx.chunk, ctx.dtype = logit_map, chunk, dtype
        return total

    @staticmethod
    def backward(ctx, grad_total):
        hidden, head, targets = ctx.saved_tensors
        need_hidden, need_head = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_head = torch.zeros_like(head, dtype=torch.float32) if need_head else None
        weight = head.detach().to(ctx.dtype).requires_grad_(need_head)
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], ctx.chunk):
                h = hidden[start : start + ctx.chunk].detach().requires_grad_(need_hidden)
                with torch.enable_grad():
                    logits = ctx.logit_map((h @ weight.T).float())
                    loss = F.cross_entropy(logits, targets[start : start + ctx.chunk], reduction="sum")
                inputs = [t for t, needed in ((h, need_hidden), (weight, need_head)) if needed]
                grads = list(torch.autograd.grad(loss, inputs, grad_total))
                if need_hidden:
                    grad_hidden[start : start + ctx.chunk] = grads.pop(0)
                if need_head:
                    grad_head += grads.pop(0).float()
        return grad_hidden, None if grad_head is None else grad_head.to(head.dtype), None, None, None, None


FULL, CHUNKED, LIGER = "full", "chunked", "liger"


@dataclass(frozen=True)
class LossPath:
    """How the loss is computed for this model on this device, and why (printed at the start of a run)."""

    name: str  # FULL, CHUNKED or LIGER
    why: str
    logit_map: LogitMap = LogitMap()
    dtype: torch.dtype | None = None  # the matmul's dtype: the run's compute dtype (None: the hidden states')

    def describe(self) -> str:
        what = {
            FULL: "full logits",
            CHUNKED: "labelled positions only, in chunks recomputed in backward",
            LIGER: "Liger Kernel's fused linear cross-entropy",
        }[self.name]
        return f"loss: {what} ({self.why})"


def choose_loss_path(model, device_type: str, dtype: torch.dtype | None = None) -> LossPath:
    """Liger Kernel where it runs (CUDA, installed, no logit scale), else the plain PyTorch chunked loss; the full
    logits only for a model whose output layer the chunked loss cannot stand in for. `dtype`: the run's compute
    dtype."""
    base = unwrap(model)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    logit_map = LogitMap.from_config(base.config)
    if not isinstance(head, torch.nn.Linear) or head.bias is not None:
        why = f"its output layer is a {type(head).__name__}, not a plain linear layer"
        return LossPath(FULL, why, logit_map, dtype)
    if "logits_to_keep" not in inspect.signature(base.forward).parameters:
        return LossPath(FULL, f"{type(base).__name__}.forward takes no logits_to_keep", logit_map, dtype)
    plain = f"plain PyTorch, {chunk_tokens(head.weight.shape[0])} positions per chunk"
    if device_type != "cuda":
        return LossPath(CHUNKED, f"{plain}; Liger Kernel runs on CUDA only", logit_map, dtype)
    if importlib.util.find_spec("liger_kernel") is None:
        return LossPath(CHUNKED, f"{plain}; pip install liger-kernel for the fused kernel", logit_map, dtype)
    if logit_map.scale != 1.0:
        return LossPath(CHUNKED, f"{plain}; Liger Kernel has no logit scale", logit_map, dtype)
    return LossPath(LIGER, "liger-kernel is installed", logit_map, dtype)


def fallback(path: LossPath, why: str) -> LossPath:
    """The next path when `path` fails its check: Liger → the plain chunked loss → the full logits."""
    name = CHUNKED if path.name == LIGER else FULL
    return LossPath(name, why, path.logit_map, path.dtype)


def check_window(labels: torch.Tensor, size: int) -> slice:
    """The positions of one row (`labels`: (L,), unshifted) that the first-step loss check runs on: at most `size`
    of them, from half a window before the first supervised token, so the check's full logits stay as small as one
    chunk of the chunked loss. (A window may begin inside a conversation: the model then sees it from there, the
    same for both losses compared.)

    >>> labels = torch.tensor([-100] * 10 + [5, 6, 7] + [-100] * 7)
    >>> check_window(labels, 8), check_window(labels, 100), check_window(labels[:3], 8)
    (slice(5, 13, None), slice(0, 20, None), slice(0, 3, None))
    """
    supervised = (labels[1:] != IGNORE).nonzero()
    first = int(supervised[0]) if len(supervised) else 0  # position `first` predicts the first supervised token
    start = max(0, min(first - size // 2, len(labels) - size))
    return slice(start, min(len(labels), start + size))


def unwrap(model):
    """The transformers model inside DDP and peft wrappers (for its config and output layer, never to call)."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def loss_sum(model, input_ids, position_ids, labels, path: LossPath):
    """(summed token loss, supervised tokens, model outputs) of one batch along `path`. The model is called
    through its wrappers (DDP must see the forward); for the chunked paths it returns its last hidden states
    and makes logits for no position (`logits_to_keep` empty)."""
    if path.name == FULL:
        outputs = model(input_ids=input_ids, position_ids=position_ids, use_cache=False)
        return (*token_loss_sum(outputs.logits, labels), outputs)
    none = torch.zeros(0, dtype=torch.long, device=input_ids.device)
    outputs = model(
        input_ids=input_ids, position_ids=position_ids, use_cache=False, output_hidden_states=True, logits_to_keep=none
    )
    hidden, head = outputs.hidden_states[-1], unwrap(model).get_output_embeddings().weight
    if path.name == LIGER:
        return (*_liger_loss_sum(hidden, head, labels, path), outputs)
    return (*chunked_loss_sum(hidden, head, labels, path.logit_map, dtype=path.dtype), outputs)


def _liger_loss_sum(hidden, head, labels, path: LossPath):
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    mask = labels[:, 1:] != IGNORE
    if not mask.any():  # Liger divides by its chunk count: nothing to predict is a zero loss, with a gradient path
        return hidden.sum() * 0.0, mask.sum()
    dtype = path.dtype or _matmul_dtype(hidden)
    loss = LigerFusedLinearCrossEntropyLoss(reduction="sum", softcap=path.logit_map.softcap)
    total = loss(head.to(dtype), hidden[:, :-1][mask].to(dtype), labels[:, 1:][mask])
    return total.float(), mask.sum()
