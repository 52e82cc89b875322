"""The tuning guide's plateau watch: judge a run's loss history, advise the lever, write the next run's config.

It runs live, as a Trainer callback during `train`, and offline, as `train watch PATH` on any run's log; both give
the same verdicts (the same judge on the same history). Callers import from the modules:

  judge    the verdict at one evaluation (plateau, overfitting, unstable, converged, …) with its evidence lines
  advice   the guide's levers as concrete config changes for a verdict, and its "what NOT to do" start-up checks
  report   writes plateau.json, plateau.md and next_config.yaml (this run's config with the first lever applied)
  foreign  any Trainer's run without torch: `history` (loss points of a log history), its window, its own values
  watch    the live Trainer callback `PlateauWatch`
  replay   `train watch PATH`: replays every evaluation of a train output folder or a trainer_state.json (no torch)
"""
