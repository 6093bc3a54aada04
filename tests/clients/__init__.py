"""Small client-side helpers for the real-client tests in tests/integration/test_client_*.py."""
