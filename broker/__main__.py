"""``python -m broker`` is the ``accord`` command."""

from broker.cli import main

main()
