"""Allow ``python -m nurture``."""

from nurture.cli import main

main()
