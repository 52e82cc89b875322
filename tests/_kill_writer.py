"""Rewrite a config's max_length in a tight loop, alternating two versions, until killed.

Run by tests/test_config_kill.py as `python tests/_kill_writer.py CONFIG [STALL]`: it prints `ready` once its
imports are done (the test's random kill delay counts from there), then writes version A, B, A, B ... forever.
With STALL `before_rename` or `after_rename`, the first write stops at that point instead (printing `stalled`), so
a kill is sure to land there.
"""

import os
import sys
import time

from analyze.config_write import update_config

# Two suggestions with different values and provenance (and lengths, so a mix of the two cannot pass for either).
# Kept short: the YAML round trip dominates a write, and the shorter it is, the more kills land inside the file
# write and rename.
VERSIONS = [
    (512, {"set_by": "kill test A", "why": "a" * 100}),
    (1024, {"set_by": "kill test B", "why": "b" * 300}),
]


def stall(point: str) -> None:
    """Make the rename of the temporary file over the config wait to be killed, just before or just after it."""
    rename = os.replace

    def stalled_replace(src, dst):
        if point == "after_rename":
            rename(src, dst)
        print("stalled", flush=True)
        time.sleep(3600)

    os.replace = stalled_replace


def main(path: str, point: str | None = None) -> None:
    import ruamel.yaml  # noqa: F401 - imported lazily by update_config; import it before `ready`

    if point:
        stall(point)

    print("ready", flush=True)
    i = 0
    while True:
        value, source = VERSIONS[i % 2]
        update_config(path, {"max_length": value, "max_length_source": source})
        i += 1


if __name__ == "__main__":
    main(*sys.argv[1:])
