"""``python -m ostinato``: the same as the ``ostinato`` command."""

from ostinato.cli import main

raise SystemExit(main())
