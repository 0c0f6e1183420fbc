"""A Django app with one model, for the integration tests."""
