"""`python -m queuectl` runs the command line."""

from queuectl.cli.main import main

raise SystemExit(main())
