import sys

from shared.entrypoints.cli import main

sys.exit(main())
