"""``python -m benchmarks``: the same as ``jtricks bench``."""

from benchmarks import main

raise SystemExit(main())
