"""``python -m ec2_sessions``: the command, where its console script is not installed."""

import sys

from ec2_sessions.cli import main

sys.exit(main())
