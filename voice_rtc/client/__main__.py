"""`python -m voice_rtc.client`: the command line (cli.py)."""

from .cli import main

main()
