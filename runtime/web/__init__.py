"""The operators' view of a running gateway: Prometheus metrics (``metrics``), a health judgement (``health``) and a
live page (``live``, ``static/``) on one listener (``server.WebServer``: ``[web] listen``, ``demo --web``,
``run --web``). A layer above ``runtime.gateway``. ``server`` and ``metrics`` need the ``web`` extra (aiohttp,
prometheus_client); ``health`` needs nothing, so the systemd watchdog can use it without them."""
