"""API tests against real robosync-server processes on both backends."""
