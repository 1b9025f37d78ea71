"""`python -m tinygrad_attn.bench [options]`."""

import sys

from . import main

sys.exit(main())
