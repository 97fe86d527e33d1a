"""One module per area; each exposes a class whose ``register`` adds its methods."""
