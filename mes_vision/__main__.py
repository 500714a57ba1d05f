"""Entry point of ``python -m mes_vision``."""

import sys

from mes_vision.cli import main

sys.exit(main())
