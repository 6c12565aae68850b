"""``python -m sk_mnist`` runs the ``sk-mnist`` command."""

from .cli import main

raise SystemExit(main())
