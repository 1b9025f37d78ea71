"""`python -m tinygrad_attn.cli.bench [options]`: `tinygrad-attn bench`, through the command's error handling."""

import sys

from .. import main

sys.exit(main(["bench", *sys.argv[1:]]))
