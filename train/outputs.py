"""The names of everything a run writes into its output folder (`run.output_dir`), in one place.

Plain strings, importable without torch or transformers (the CLI's help texts use them). The Trainer's own
`checkpoint-*` folders are not listed: their names are the Trainer's.

>>> sorted(RUN_LOGS)
['log.csv', 'loss_curve.png', 'next_config.yaml', 'plateau.json', 'plateau.md', 'watch.jsonl']
>>> RUN_LOGS < SMOKE_OUTPUTS
True
"""

from __future__ import annotations

# the run
LOG_CSV = "log.csv"  # one row per logged step: train loss, eval loss, learning rate, tokens per second
RESOLVED_CONFIG = "config.yaml"  # the config as run, every resolved value set (also inside ADAPTER_DIR)
ADAPTER_DIR = "adapter"  # the LoRA adapter, tokenizer and resolved config at the end of the run
TENSORBOARD = "tensorboard"  # TensorBoard event files (written by the main process)
FIGURE = "loss_curve.png"  # the loss curves (`train plot RUN_DIR`)

# the plateau watch
REPORT = "plateau.json"  # the verdict that asks the user to act, its evidence and the levers
REPORT_MD = "plateau.md"  # the same, readable
NEXT_CONFIG = "next_config.yaml"  # this run's config with the first lever applied
VERDICTS_LOG = "watch.jsonl"  # one line per evaluation: step, verdict, window (what `train watch` replays)

# a smoke run (`train --smoke`)
SMOKE_MARKER = ".lengthscan-smoke"  # in a smoke run's folder: it may be replaced by the next smoke run
SMOKE_MODEL_DIR = "smoke-model"  # the tiny random model the smoke run builds, then loads like a real one

# a run's logs and reports: a fresh run in a folder without checkpoints starts them anew (appending would mix runs)
RUN_LOGS = frozenset({LOG_CSV, FIGURE, REPORT, REPORT_MD, NEXT_CONFIG, VERDICTS_LOG})
# everything a smoke run writes into its folder, besides checkpoint-*: what the next smoke run removes
SMOKE_OUTPUTS = RUN_LOGS | {SMOKE_MARKER, SMOKE_MODEL_DIR, ADAPTER_DIR, RESOLVED_CONFIG, TENSORBOARD}
