"""``python -m jtricks`` is the ``jtricks`` command."""

from jtricks.cli import main

raise SystemExit(main())
