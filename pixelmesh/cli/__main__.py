"""`python -m pixelmesh.cli`: the `pixelmesh` command."""

from pixelmesh.cli import main

raise SystemExit(main())
