"""The command line, ``python -m ttft …``: argument parsers generated from the options' declarations."""
