"""``python -m sageport.server``: same as the ``sageport-server`` console script."""

import sys

from sageport.server.main import main

sys.exit(main())
