import sys

from .party import main

sys.exit(main())
