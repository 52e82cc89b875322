"""The memory plan's verdict on a run before its model loads, and the levers every memory message names: the plan
that fits (as flags), then the others. A GPU run the plan says will not fit stops here, in one line."""

from __future__ import annotations

from dataclasses import replace

from analyze.errors import UserError
from analyze.memory import MemoryModel
from analyze.schema import Config


def memory_plan(cfg: Config, m: MemoryModel, refuse: bool) -> tuple[dict, list[str]]:
    """The plan of this config as `train --dry-run --json` shows it, and the lines that say it; a plan that does not
    fit the GPU stops the run (`refuse`: training on one) or is a warning."""
    doc: dict = {"gpu": m.gpu, "budget_gib": round(m.budget_gib, 2), "model_config": m.source}
    if m.shape is None:
        return doc | {"unknown": m.source}, [f"memory plan: unknown ({m.source})"]
    o = cfg.optim
    plan = m.plan(cfg.max_length, o.micro_batch_size)
    shown = plan.as_dict()
    doc |= {"peak_gib": shown["peak_gib"], "fits": plan.fits(m.budget_gib), "parts_gib": shown["parts_gib"]}
    lines = [
        f"memory plan: peak {plan.peak_gib:.1f} of {m.budget_gib:.1f} GiB on {m.gpu} at {o.micro_batch_size} rows "
        f"× {cfg.max_length} tokens ({plan.describe()})"
    ]
    if plan.fits(m.budget_gib):
        return doc, lines
    message = (
        f"the memory plan predicts {plan.peak_gib:.1f} GiB at max_length {cfg.max_length} × micro_batch_size "
        f"{o.micro_batch_size}, more than the {m.budget_gib:.1f} GiB of {m.gpu}; {memory_levers(cfg, m)}"
    )
    if refuse:
        raise UserError(message + " (or --run.memory_check false to try anyway)")
    return doc, [*lines, f"warning: {message}"]


def full_logits_refusal(cfg: Config, m: MemoryModel) -> str | None:
    """Why a fallback to the full-logits loss would not fit (the plan's peak and the levers), or None where it fits
    or the plan is unknown: a run stops there rather than run out of memory after its loss check."""
    if m.shape is None:
        return None
    full = replace(m, settings=replace(m.settings, loss="full"))
    plan = full.plan(cfg.max_length, cfg.optim.micro_batch_size)
    if plan.fits(full.budget_gib):
        return None
    gpu = full.gpu if "GiB" in full.gpu else f"{full.gpu} ({full.budget_gib:.1f} GiB)"
    return (
        f"the full logits need {plan.peak_gib:.1f} GiB at max_length {cfg.max_length} × micro_batch_size "
        f"{cfg.optim.micro_batch_size}, more than fits {gpu}; {memory_levers(cfg, full)}"
    )


def memory_levers(cfg: Config, m: MemoryModel) -> str:
    """The changes that fit, as flags, then the other levers."""
    o = cfg.optim
    f = m.fit(cfg.max_length, o.micro_batch_size, o.grad_accum_steps, cfg.suggest.round_to)
    flags = []
    if f.max_length != cfg.max_length:
        flags.append(f"--max_length {f.max_length}")
    if f.micro_batch_size != o.micro_batch_size:
        flags.append(f"--optim.micro_batch_size {f.micro_batch_size} --optim.grad_accum_steps {f.grad_accum_steps}")
    if not f.plan.fits(m.budget_gib):
        fits = f"even one row of {f.max_length} tokens needs {f.plan.peak_gib:.1f} GiB: choose a smaller model; "
    elif flags:
        fits = f"{' '.join(flags)} fits ({f.plan.peak_gib:.1f} GiB, same effective batch); "
    else:
        fits = ""
    checkpointing = "" if cfg.run.gradient_checkpointing else "--run.gradient_checkpointing true, "
    return (
        f"{fits}other levers: {checkpointing}a lower --lora.r (now {cfg.lora.r}), a shorter --max_length "
        f"(lengthscan shows what each length cuts)"
    )


def oom_message(cfg: Config, memory: dict | None = None) -> str:
    """A run that ran out of GPU memory: the plan's prediction, if any, and the levers."""
    o = cfg.optim
    peak = (memory or {}).get("peak_gib")
    predicted = f" (the memory plan predicted {peak:.1f} of {memory['budget_gib']:.1f} GiB)" if peak else ""
    return (
        f"CUDA out of memory at max_length {cfg.max_length}, micro_batch_size {o.micro_batch_size}{predicted}; "
        f"lower --optim.micro_batch_size (and raise --optim.grad_accum_steps to keep the effective batch of "
        f"{cfg.effective_batch}), lower --max_length (lengthscan shows what that cuts), lower --lora.r, and keep "
        "--run.gradient_checkpointing true"
    )
