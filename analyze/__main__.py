"""`python -m analyze`: the `lengthscan` command."""

from analyze.cli import main

raise SystemExit(main())
