"""Entry points, one module per trigger; the only code that knows event shapes."""
