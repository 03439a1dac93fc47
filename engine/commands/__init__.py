"""Commands of the ``formflow`` CLI, one module each (registered in ``engine.cli``)."""
