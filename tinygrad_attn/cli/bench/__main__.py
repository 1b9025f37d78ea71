"""`python -m tinygrad_attn.cli.bench [options]`."""

import sys

from . import main

sys.exit(main())
