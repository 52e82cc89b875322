"""The run's schedule: the guide's step numbers, stated in its own units, converted to packed optimizer steps.

The tuning guide counts steps of unpacked batches of 4 × 4 = 16 conversations ("warmup 200", "evaluate every 200",
"flat across 1000+ steps"). A packed step holds several times more conversations, so copied as packed steps those
numbers can exceed a whole run. The config's `schedule` section keeps the guide's units — a *guide step* is
micro_batch_size × grad_accum_steps × processes conversations — and each is converted through the conversations it
stands for: `guide steps × conversations per guide step ÷ conversations per packed step`. Then each is fitted to the
run: warmup at most `warmup_max` of it, at least `min_evals` evaluations and checkpoints, a plateau window at most
`plateau_max` of it. Every conversion is printed with its source, and a setting that still cannot take effect is a
warning with the fix.

On the bundled sample (2,241 train conversations in 831 rows of 512 tokens, 4 × 4, 3 epochs → 156 steps), a packed
step holds 43.1 conversations, so the guide's 200-step warmup (3,200 conversations) would be 74 packed steps — half
the run — and is capped at 5% of it:

>>> from analyze.schema import Config
>>> s = schedule(Config(), train_rows=831, train_conversations=2241, has_eval=True)
>>> s.steps_per_epoch, s.total_steps, s.warmup_steps, s.eval_steps, s.save_steps, s.plateau_steps, s.evals
(52, 156, 7, 19, 19, 39, 10)
>>> print(s.conversions[0])
warmup: 200 guide steps = 3,200 conversations = 74 packed steps; capped at 7, 5% of the run's 156 steps \
(schedule.warmup_max)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from analyze.schema import Config
from analyze.stats import optimizer_steps


@dataclass
class Schedule:
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    eval_steps: int
    save_steps: int
    plateau_steps: int  # the plateau watch's window: eval flat across at least this many optimizer steps
    evals: int  # evaluations the run makes: at step 0, every eval_steps, and at the end
    checkpoints: int  # every save_steps, and at the end
    conversations_per_step: float  # conversations a packed optimizer step holds, on average
    conversations_per_guide_step: int
    conversions: list[str] = field(default_factory=list)  # how each number came from the config, one line each
    logging_steps: int = 10
    warnings: list[str] = field(default_factory=list)  # settings that cannot take effect, with the fix

    def as_dict(self) -> dict:
        keys = ("steps_per_epoch", "total_steps", "warmup_steps", "eval_steps", "save_steps", "plateau_steps",
                "logging_steps", "evals", "checkpoints", "conversations_per_step",
                "conversations_per_guide_step")  # fmt: skip
        return {k: round(v, 2) if isinstance(v, float) else v for k in keys if (v := getattr(self, k)) is not None}

    def lines(self) -> list[str]:
        epochs = self.total_steps / max(self.steps_per_epoch, 1)
        head = (
            f"schedule: {self.total_steps} optimizer steps ({self.steps_per_epoch} per epoch x {epochs:g} epochs), "
            f"{self.conversations_per_step:.1f} conversations per packed step, "
            f"{self.conversations_per_guide_step} per guide step"
        )
        return [head, *(f"  {c}" for c in self.conversions)]


def schedule(cfg: Config, train_rows: int, train_conversations: int, has_eval: bool, world_size: int = 1) -> Schedule:
    """The schedule `train` gives transformers' Trainer for this config and plan (Trainer's own step arithmetic:
    ceil(epochs × steps per epoch) unless run.max_steps is set; an eval at the start, every eval_steps and at the
    end; a checkpoint every save_steps and at the end)."""
    o, s = cfg.optim, cfg.schedule
    per_epoch = optimizer_steps(train_rows, o.micro_batch_size * world_size, o.grad_accum_steps)
    total = cfg.run.max_steps if cfg.run.max_steps > 0 else math.ceil(o.epochs * per_epoch)
    per_step = train_conversations / max(per_epoch, 1)
    per_guide = o.micro_batch_size * o.grad_accum_steps * world_size
    convert = _Converter(per_step, per_guide, total)

    warmup = convert("warmup", s.warmup, zero_ok=True)
    share = s.warmup_max * total
    # a warmup asked for is never rounded or capped away to nothing (but never the whole run: one step at lr 0)
    least = 1 if s.warmup > 0 and total > 1 else 0
    cap = max(math.floor(share), least)
    if warmup > cap:
        part = f"{s.warmup_max:.0%} of the run's {total} steps"
        why = part if cap == math.floor(share) else f"the least a warmup takes ({part} is {share:.2g})"
        convert.note(f"capped at {cap}, {why} (schedule.warmup_max)")
    elif warmup < least:
        convert.note("raised to 1, the least a warmup takes (schedule.warmup is not 0)")
    warmup = min(max(warmup, least), cap)
    cadence = {}
    for name, every in (("eval", s.eval_every), ("save", s.save_every)):
        steps = convert(f"{name} every", every)
        longest = max(total // s.min_evals, 1) if s.min_evals else None
        shortest = math.ceil(total / s.max_evals) if s.max_evals else None
        if longest is not None and steps > longest:
            convert.note(f"shortened to {longest} so the run has at least {s.min_evals} (schedule.min_evals)")
            steps = longest
        elif shortest is not None and steps < shortest:
            convert.note(f"lengthened to {shortest} so the run has at most {s.max_evals} (schedule.max_evals)")
            steps = shortest
        cadence[name] = steps
    window = convert("plateau window", s.plateau_window)
    window_cap = max(math.ceil(s.plateau_max * total), (cfg.plateau.min_evals - 1) * cadence["eval"])
    if window > window_cap:
        convert.note(
            f"capped at {window_cap}, {s.plateau_max:.0%} of the run (schedule.plateau_max): the guide's window was "
            "written for a run of about 6,000 steps"
        )
        window = window_cap

    logging = min(cfg.run.logging_steps, max(window // 3, 1))
    if logging < cfg.run.logging_steps:
        convert.lines.append(
            f"logging every {logging} steps (run.logging_steps {cfg.run.logging_steps}, shortened so the plateau "
            "window holds 3+ train losses)"
        )
    evals = (1 + math.ceil(total / cadence["eval"])) if has_eval else 0
    plan = Schedule(
        per_epoch, total, warmup, cadence["eval"], cadence["save"], window, evals,
        math.ceil(total / cadence["save"]), per_step, per_guide, convert.lines, logging_steps=logging,
    )  # fmt: skip
    plan.warnings = _cannot_take_effect(cfg, plan, has_eval)
    return plan


class _Converter:
    """Guide steps → conversations → packed optimizer steps, remembering a printable line for each."""

    def __init__(self, per_step: float, per_guide: int, total: int):
        self.per_step, self.per_guide, self.total = per_step, per_guide, total
        self.lines: list[str] = []

    def __call__(self, name: str, guide_steps: float, zero_ok: bool = False) -> int:
        conversations = guide_steps * self.per_guide
        steps = round(conversations / self.per_step) if self.per_step else 0
        steps = steps if zero_ok else max(steps, 1)
        self.lines.append(
            f"{name}: {guide_steps:g} guide steps = {conversations:,.0f} conversations = {steps:,} packed steps"
        )
        return steps

    def note(self, text: str) -> None:
        self.lines[-1] += f"; {text}"


def _cannot_take_effect(cfg: Config, plan: Schedule, has_eval: bool) -> list[str]:
    total, out = plan.total_steps, []
    if plan.warmup_steps >= total > 0:
        out.append(
            f"warmup of {plan.warmup_steps} steps is the whole run ({total}): the learning rate never reaches its "
            "peak and never decays; lower schedule.warmup or schedule.warmup_max"
        )
    if 0 < total < cfg.schedule.min_evals:
        out.append(
            f"the run has {total} optimizer steps, fewer than schedule.min_evals ({cfg.schedule.min_evals}): at most "
            f"{total} evaluations after the start; more data, more epochs or a lower max_length gives more steps"
        )
    if has_eval and plan.eval_steps > total:
        out.append(
            f"evaluation every {plan.eval_steps} steps is longer than the run ({total}): eval loss is measured only "
            "at the start and the end; lower schedule.eval_every or raise schedule.min_evals"
        )
    if plan.save_steps > total:
        out.append(
            f"a checkpoint every {plan.save_steps} steps is longer than the run ({total}): only the end is saved and "
            "a killed run cannot be resumed; lower schedule.save_every or raise schedule.min_evals"
        )
    if not has_eval:
        out.append("no eval set: the plateau watch cannot judge the run; set data.eval_fraction or data.eval")
    elif plan.plateau_steps > total or plan.evals < cfg.plateau.min_evals:
        out.append(
            f"the plateau window of {plan.plateau_steps} steps with {cfg.plateau.min_evals}+ evaluations does not fit "
            f"in the run ({total} steps, {plan.evals} evaluations): the plateau watch cannot judge it; lower "
            "schedule.plateau_window or schedule.plateau_max, or raise schedule.min_evals"
        )
    return out
