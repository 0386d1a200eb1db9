"""What the tests share: fixtures (registered as pytest plugins in tests/conftest.py),
scorer and topic helpers, and the private servers and traffic of the reliability tests."""
