import sys

from bimmailctl.cli import main

sys.exit(main())
