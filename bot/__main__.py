"""`python -m bot` is the `hotline` command."""

from bot.cli import main

raise SystemExit(main())
