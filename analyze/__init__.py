"""lengthscan: exact token lengths of chat data, the max_length that fits it, written into the trainer's config.

The pipeline, one module a step: `reader` → `formats` → `render` → `pipeline` (→ `lengths.LengthTable`)
→ `overlong` → `packing` → `plan` → `stats` / `suggest` → `analysis` → `report` / `config_write`.
`train` imports these; nothing here imports torch.
"""

__version__ = "0.1.0"
