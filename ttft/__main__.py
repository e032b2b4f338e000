import signal
import sys

from ttft.cli.main import main

if __name__ == "__main__":
    if hasattr(signal, "SIGPIPE"):  # `python -m ttft tasks ... | head` ends quietly
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
