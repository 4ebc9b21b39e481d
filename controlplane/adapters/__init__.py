"""One module per external system; each turns its library's errors into `core.errors` at its
boundary."""
