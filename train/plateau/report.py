"""Hand the user the next run: plateau.json, a readable plateau.md and next_config.yaml with the first lever."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from analyze.atomic import atomic_write
from analyze.config import default_yaml, flatten, to_file_dict
from analyze.config_write import set_values
from analyze.schema import Config
from train.outputs import NEXT_CONFIG, REPORT, REPORT_MD
from train.plateau.advice import Lever, advice_for
from train.plateau.foreign import values_lines
from train.plateau.judge import LOSS_FLOOR, Verdict


@dataclass
class StepScale:
    """What one optimizer step holds under packing, to translate step windows into data."""

    conversations: float
    tokens: float

    @classmethod
    def from_plan(cls, trained_records: int, rows: int, real_tokens: int, rows_per_step: int) -> StepScale:
        """Per optimizer step: conversations and real tokens, from the packed plan.

        >>> StepScale.from_plan(trained_records=300, rows=100, real_tokens=50_000, rows_per_step=16)
        StepScale(conversations=48.0, tokens=8000.0)
        """
        return cls(trained_records / rows * rows_per_step, real_tokens / rows * rows_per_step)


def resolved_config_text(cfg: Config, folder: Path, base_text: str | None = None) -> str:
    """The run's config as commented YAML for a file in `folder`: the user's file (or the defaults) with every
    resolved value set, paths relative to `folder`."""
    return set_values(base_text or default_yaml(), flatten(to_file_dict(cfg, folder)))


SMOKE_NOTE = (
    "a --smoke run trains a random tiny model for a few CPU steps: its losses say nothing about your model or data, "
    "so the watch ran (its verdicts are in watch.jsonl) but judged nothing: no levers, and no next_config.yaml (one "
    "is only ever a config `train` accepts for a real run)"
)
FOREIGN_NOTE = (
    "not a `train` run: no next_config.yaml; make lever 1's change in your own config (the keys are this project's: "
    "lora.r and lora.alpha are LoraConfig's r and lora_alpha, optim.learning_rate and optim.epochs TrainingArguments' "
    "learning_rate and num_train_epochs)"
)


def write_plateau_report(
    out_dir: Path,
    verdict: Verdict,
    cfg: Config,
    scale: StepScale | None,
    analysis=None,
    base_text: str | None = None,
    best_step: int | None = None,
    steps_per_epoch: int = 0,
    *,
    smoke: dict | None = None,
    values: dict[str, str | None] | None = None,
) -> list[Lever]:
    """Write plateau.json, plateau.md and (when the verdict's first lever changes the config) next_config.yaml into
    `out_dir`; return the levers. Called again when the verdict changes: the files are rewritten.

    `smoke`: the settings --smoke set (key → value) — the report says what the watch would have written, with no
    levers and no next_config.yaml. `values`: a run not made by `train` (`PlateauCallback` in another Trainer): where
    each lever's starting value came from (`train.plateau.foreign`); the levers, and no next_config.yaml.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options = advice_for(verdict.kind, cfg, analysis, best_step, steps_per_epoch)
    writes_next = bool(options[0].change) and smoke is None and values is None
    doc = {
        "verdict": verdict.kind,
        "step": verdict.step,
        "window": _window(verdict, scale),
        "evidence": verdict.evidence,
        "loss_floor": LOSS_FLOOR if verdict.kind == "plateau" and smoke is None else None,
        "levers": [asdict(lv) for lv in options] if smoke is None else [],
        "next_config": NEXT_CONFIG if writes_next else None,
        "next_config_change": options[0].change if smoke is None else {},
    }
    if smoke is not None:
        would = [_lever_line(lv) for lv in options]
        doc["smoke"] = {"note": SMOKE_NOTE, "settings": smoke, "would_have_written": would}
    if values is not None:
        doc |= {"no_next_config": FOREIGN_NOTE, "values": values, "values_lines": values_lines(values, cfg)}
    atomic_write(out_dir / REPORT, json.dumps(doc, indent=2) + "\n")
    atomic_write(out_dir / REPORT_MD, _markdown(doc, options))
    if writes_next:
        text = set_values(resolved_config_text(cfg, out_dir, base_text), options[0].change)
        atomic_write(out_dir / NEXT_CONFIG, text)
    else:
        (out_dir / NEXT_CONFIG).unlink(missing_ok=True)  # an earlier verdict's advice no longer holds
    return options


def _window(verdict: Verdict, scale: StepScale | None) -> dict | None:
    if not verdict.window:
        return None
    steps = verdict.window[1] - verdict.window[0]
    window = {"steps": list(verdict.window), "optimizer_steps": steps}
    if scale:
        window |= {"conversations": round(steps * scale.conversations), "tokens": round(steps * scale.tokens)}
    return window


def _lever_line(lv: Lever) -> str:
    change = ", ".join(f"{k}={v}" for k, v in lv.change.items()) or "no config change"
    return f"{lv.number}. {lv.title}: {change}. {lv.why}"


def summary_lines(verdict: Verdict, scale: StepScale | None) -> list[str]:
    """What `train` prints when the watch finds something."""
    lines = [f"{verdict.kind} at step {verdict.step}: " + "; ".join(verdict.evidence)]
    if verdict.window and scale:
        steps = verdict.window[1] - verdict.window[0]
        lines.append(
            f"window: {steps} optimizer steps ≈ {steps * scale.conversations:,.0f} conversations, "
            f"{steps * scale.tokens:,.0f} tokens (packed steps hold more than the guide's unpacked ones)"
        )
    if verdict.kind == "plateau":
        lines.append(LOSS_FLOOR)
    return lines


def _markdown(doc: dict, options: list[Lever]) -> str:
    title = doc["verdict"].replace("_", " ").capitalize()
    w = doc["window"]
    smoke = doc.get("smoke")
    heading = f"# {title} at step {doc['step']}" + (" (a smoke run: not judged)" if smoke else "")
    lines = [heading, ""]
    lines += [f"- {e}" for e in doc["evidence"]]
    if w:
        scale = f" ≈ {w['conversations']:,} conversations, {w['tokens']:,} tokens" if "conversations" in w else ""
        lines += [f"- window: steps {w['steps'][0]}–{w['steps'][1]} ({w['optimizer_steps']} optimizer steps{scale})"]
    if smoke:
        set_by = ", ".join(f"{k}={v}" for k, v in smoke["settings"].items())
        lines += ["", f"The watch ran; {smoke['note']}.", "", f"--smoke set: {set_by}.", "",
                  "## What it would have written for a real run", ""]  # fmt: skip
        lines += [f"- {line}" for line in smoke["would_have_written"]]
        lines += ["", "For the watch's advice, train for real: `train --config YOUR_CONFIG` (without --smoke)."]
        return "\n".join(lines) + "\n"
    if doc["loss_floor"]:
        lines += ["", f"> {doc['loss_floor']}"]
    if doc.get("values_lines"):
        lines += ["", "The levers start from this run's values where the Trainer has them:", ""]
        lines += [f"- {line}" for line in doc["values_lines"]]
    heading = "Levers, in the guide's order" if doc["verdict"] == "plateau" else "What to do"
    lines += ["", f"## {heading}", ""]
    for lv in options:
        change = ", ".join(f"`{k}: {v}`" for k, v in lv.change.items()) or "no config change"
        lines.append(f"{lv.number}. **{lv.title}** (impact: {lv.impact}) — {change}. {lv.why}.")
    first = ", ".join(f"{k}={v}" for k, v in options[0].change.items())
    if doc["next_config"]:
        lines += ["", "## Next run", "", f"`{NEXT_CONFIG}` is this run's config with lever 1 applied ({first}):",
                  "", "```bash", f"train --config {NEXT_CONFIG}", "```"]  # fmt: skip
    elif doc.get("no_next_config") and first:
        lines += ["", "## Next run", "", f"Lever 1: {first}; {doc['no_next_config']}."]
    lines += [
        "",
        "What NOT to do (the guide): don't increase epochs past 3 without evidence; don't reduce the batch below 8; "
        "don't chase train loss below eval loss — that gap is overfitting, not progress.",
    ]
    return "\n".join(lines) + "\n"
