from __future__ import annotations

import sys

from scanarchive.cli.main import main

sys.exit(main())
