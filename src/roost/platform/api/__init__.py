"""HTTP routes of the platform, one module per group of operations.

- :mod:`.runs`: queue-simulation-run, update-simulation-result, retrieve, re-evaluate, ping;
- :mod:`.resources`: agents, simulations, digital humans;
- :mod:`.roost`: Roost's own operations (organisation, keys, call progress);
- :mod:`.common`: dependencies, id parsing, errors and idempotency;
- :mod:`.resource_models`, :mod:`.result_models`: the pydantic models.

Example:
    >>> from roost.platform.api import runs
    >>> runs.router.routes[0].path.startswith("/v1/")
    True
"""

from __future__ import annotations
