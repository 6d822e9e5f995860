import sys

from biomoe_edge.cli import main

sys.exit(main())
