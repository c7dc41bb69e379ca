import sys

from pipeshield.cli import main

sys.exit(main())
