"""`train --auto-maxlen`: the max_length `lengthscan` would suggest for this data, tokenizer and GPU, written into the
config file as `lengthscan --write-config` writes it, and the run's config with it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from analyze import __version__
from analyze.config import config_target, with_values
from analyze.pipeline import Tokenized
from analyze.schema import Config
from train.data import analysis_at, write_back
from train.ranks import decided_by_main
from train.smoke import SMOKE_MAX_LENGTH


@dataclass
class AutoMaxlen:
    cfg: Config  # the run's config with the new max_length (and a split micro-batch where the plan needs one)
    provenance: dict[str, str]  # the keys it set and why, for the resolved config
    lines: list[str] = field(default_factory=list)  # what it decided, one line each


def auto_maxlen(cfg: Config, tokenized: Tokenized, model_config: dict, config_path: Path | None, smoke: bool,
                dry_run: bool, budget: float | None = None) -> AutoMaxlen:  # fmt: skip
    """The suggestion of the analysis at `cfg` (capped by the model's positions and, but for --smoke, by the memory
    plan of `budget` or the config's GPU), written back unless `dry_run`; --smoke trains at most `SMOKE_MAX_LENGTH`."""
    analysis = analysis_at(cfg, tokenized, model_config, budget, memory=not smoke)
    s = analysis.suggestion
    at = next((c for c in analysis.candidates if c.max_length == s.max_length), None)
    detail = f"; packed waste {at.padding_waste_packed:.1%}, truncated {at.truncation_rate:.1%}" if at else ""
    lines = [f"auto-maxlen: max_length {cfg.max_length} -> {s.max_length} ({s.reason}{detail})"]
    target = config_target(config_path)
    if dry_run:
        lines.append(f"auto-maxlen: dry run, {target} left as it is")
    else:
        created = decided_by_main(lambda: write_back(target, analysis, __version__))
        lines.append(f"auto-maxlen: {'created' if created else 'updated'} {target}: max_length = {s.max_length}")
    prov = {"max_length": f"auto: {s.reason}"}
    if s.micro_batch_size:  # the memory plan split the batch to fit: same effective batch
        lines.append(
            f"auto-maxlen: micro_batch_size {s.micro_batch_size}, grad_accum_steps {s.grad_accum_steps} to fit"
        )
        split = {"optim.micro_batch_size": s.micro_batch_size, "optim.grad_accum_steps": s.grad_accum_steps}
        cfg = with_values(cfg, split)
        prov |= dict.fromkeys(split, "auto: the memory plan")
    value = s.max_length
    if smoke and value > SMOKE_MAX_LENGTH:
        lines.append(f"auto-maxlen: --smoke trains at {SMOKE_MAX_LENGTH} on the CPU; a real run uses {value}")
        value = SMOKE_MAX_LENGTH
    return AutoMaxlen(replace(cfg, max_length=value), prov, lines)
