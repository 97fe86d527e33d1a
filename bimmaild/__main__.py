import sys

from bimmaild.cli import main

sys.exit(main())
