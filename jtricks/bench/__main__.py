"""``python -m jtricks.bench``: the same as ``jtricks bench``."""

from jtricks.bench import main

raise SystemExit(main())
