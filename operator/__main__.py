"""`python -m pixelmesh.operator`: run the operator (see `pixelmesh.operator.main`)."""

import sys

from pixelmesh.operator.main import main

if __name__ == "__main__":
    sys.exit(main())
