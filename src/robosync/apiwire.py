"""Names and limits of the HTTP API both sides use, without the server's pydantic models.

The robot client imports this module (and :mod:`robosync.client.wire`) instead of
:mod:`robosync.protocol`, whose models cost ~0.1 s to build at import.
"""

API_PREFIX = "/v1"
VERSION_HEADER = "X-Robosync-Version"
IDEMPOTENCY_HEADER = "Idempotency-Key"
NDJSON = "application/x-ndjson"
MAX_INT = 2**63 - 1  # every integer the API stores is a signed 64-bit database column
DIGEST_PATTERN = r"^[0-9a-f]{64}$"
