"""The test suite (a package, so that tests import conftest and each other once, as tests.*)."""
