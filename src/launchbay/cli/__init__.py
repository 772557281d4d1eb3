"""The `launchbay` command: a client of the native API, plus `serve` and `db`."""
