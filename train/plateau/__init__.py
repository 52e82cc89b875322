"""The tuning guide's plateau watch: judge a run's loss history, advise the lever, write the next run's config.

It runs live, as a Trainer callback during `train`, and offline, as `train watch PATH` on any run's log; both give
the same verdicts (the same judge on the same history). In any other Trainer (TRL's SFTTrainer, a plain
`transformers.Trainer`): `from train.plateau import PlateauCallback`. Otherwise callers import from the modules:

  judge    the verdict at one evaluation (plateau, overfitting, unstable, converged, …) with its evidence lines
  advice   the guide's levers as concrete config changes for a verdict, and its "what NOT to do" start-up checks
  report   writes plateau.json, plateau.md and next_config.yaml (this run's config with the first lever applied)
  foreign  any Trainer's run without torch: `history` (loss points of a log history), its window, its own values
  watch    the live Trainer callback `PlateauWatch`
  callback `PlateauCallback`: PlateauWatch configured from any Trainer's arguments
  replay   `train watch PATH`: replays every evaluation of a train output folder or a trainer_state.json (no torch)
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from train.plateau.callback import PlateauCallback

__all__ = ["PlateauCallback"]


def __getattr__(name: str):
    """`PlateauCallback` is imported on first use: it pulls transformers' Trainer (and torch), which `train watch`
    (train.plateau.replay, in this package too) must not."""
    if name == "PlateauCallback":
        from train.plateau.callback import PlateauCallback

        return PlateauCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
