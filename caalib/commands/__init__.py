"""Sub-commands of ``caa``, one module per stage; each exposes ``register(subparsers)``."""
