"""`python -m bench.shapes`: see `bench.shapes.cli`."""

import sys

from bench.shapes.cli import main

sys.exit(main())
