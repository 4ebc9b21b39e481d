"""Pure logic: models, rendering, type mapping, plans, errors. No I/O, no adapter imports."""
