"""python -m retls HOST:PORT [options]: the TLS test client in probe.py."""
import sys

from retls.probe import main

sys.exit(main())
