"""``python -m jobd`` is the ``jobd`` command."""

from __future__ import annotations

from jobd.cli.daemon import main

raise SystemExit(main())
