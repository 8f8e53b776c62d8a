"""``python -m wormspace``: the same as the ``wormspace`` command."""

from wormspace.main import main

raise SystemExit(main())
