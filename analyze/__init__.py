"""lengthscan: exact token lengths of chat data, the max_length that fits it, written into the trainer's config.

The pipeline, one module a step: `sources` → `reader` → `formats` → `render` → `pipeline` (→ `lengths.LengthTable`,
stored by `cache`) → `split` → `overlong` → `packing` → `plan` → `stats` / `suggest` / `memory` → `analysis` →
`report` / `plot` / `config_write`. Around it: `schema` (the typed config both commands read; imports nothing of the
project), `config` (reading, checking and writing it), `gpus` (GPU names and budgets), `yaml_text` (YAML in and out),
`tokenizer` (which one, loading it, its files), `model_facts` (what a model's config.json says, read without loading
it, and the tokenizer-vs-model checks), `sample` (`--sample`), `errors` and `load_errors` (one-line errors with their
fix), `atomic` (files written whole), `cli` (the `lengthscan` command). `train` imports these; nothing here imports
torch (docs/layout.md).
"""

__version__ = "0.1.0"
