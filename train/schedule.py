"""The run's schedule in optimizer steps, as transformers' Trainer will count them: steps per epoch of the packed
train rows, total steps, warmup, and how many evaluations and checkpoints that makes.

>>> from analyze.config import Config
>>> s = schedule(Config(), train_rows=831, has_eval=True)
>>> s.steps_per_epoch, s.total_steps, s.evals, s.checkpoints   # 831 rows / 4 = 208 batches / 4 = 52 steps
(52, 156, 1, 0)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from analyze.config import Config
from analyze.stats import optimizer_steps


@dataclass
class Schedule:
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    eval_steps: int
    save_steps: int
    evals: int  # evaluations the run makes, the one before the first step included
    checkpoints: int

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        epochs = self.total_steps / max(self.steps_per_epoch, 1)
        return [
            f"schedule: {self.total_steps} optimizer steps ({self.steps_per_epoch} per epoch x {epochs:g} epochs); "
            f"warmup {self.warmup_steps}; eval every {self.eval_steps} ({self.evals} evaluations); "
            f"checkpoint every {self.save_steps} ({self.checkpoints} checkpoints)"
        ]


def schedule(cfg: Config, train_rows: int, has_eval: bool, world_size: int = 1) -> Schedule:
    """Trainer's own arithmetic: ceil(epochs × steps per epoch) unless run.max_steps is set; an eval at the start
    and every eval_steps, a checkpoint every save_steps."""
    o, r = cfg.optim, cfg.run
    per_epoch = optimizer_steps(train_rows, o.micro_batch_size * world_size, o.grad_accum_steps)
    total = r.max_steps if r.max_steps > 0 else math.ceil(o.epochs * per_epoch)
    evals = (1 + total // r.eval_steps) if has_eval else 0
    return Schedule(per_epoch, total, o.warmup_steps, r.eval_steps, r.save_steps, evals, total // r.save_steps)
