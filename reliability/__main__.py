"""``python -m reliability``: the soak run (see ``reliability.soak``)."""

from reliability.soak import main

raise SystemExit(main())
