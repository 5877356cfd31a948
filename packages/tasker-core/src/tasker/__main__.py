"""`python -m tasker ...`: the `tasker` command."""

import sys

from tasker.cli import main

sys.exit(main())
