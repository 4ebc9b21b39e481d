"""cass-cdc-pg control plane: the package behind the `cdcctl` command."""

__version__ = "0.1.0"
