import sys

from rankrobust.cli.main import main

sys.exit(main())
