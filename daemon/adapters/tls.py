"""One TLS context for every HTTP client the daemon builds.

httpx loads the CA bundle again for each ``Client`` (25-50 ms and about a
megabyte each); the daemon builds one per RunPod account, one for the balance
and one per webhook notifier, and again on every reload. ``httpx``'s own
``create_ssl_context`` keeps its defaults (certifi, ``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` honoured), made once per process.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_context() -> ssl.SSLContext:
    """The shared client-side TLS context (verifying, httpx's defaults)."""
    return httpx.create_ssl_context()
