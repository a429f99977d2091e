"""Code samples of the developer guide, copied unchanged, that the tests run."""
