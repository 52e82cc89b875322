"""train: packed-sequence QLoRA fine-tuning of a chat model, sized for a 16 GB T4, on the analyzer's tokenization.

The run, one module a step: `cli` (the `train` command) → `overrides` (command-line values and their provenance) →
`run` (start to end) → `data` (the analyzer's table and plan, the eval split, `--auto-maxlen`) → `rows` (packed rows)
→ `collate` → `model` (4-bit base + LoRA) → `schedule` (the guide's steps in packed optimizer steps) → `loss` →
`trainer` (transformers' Trainer with that loss) → `callbacks` (the CSV log) → `plateau/` (the plateau watch, live
and `train watch`). Around it: `ranks` (several processes as one run), `launch` (several GPUs, no launcher),
`smoke` (a tiny random model for `--smoke`), `loss_plot` (`train plot`), `outputs` (the names of a run's files).
"""
