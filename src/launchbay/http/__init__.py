"""HTTP faces: thin adapters from requests to operations."""
