"""The API gateway: routes requests to the upstream services of services.toml.

``config`` reads the services file, ``registry`` holds the per-process state
(balancers, breakers, health prober), ``forward`` sends one request with
retries, ``cache`` keeps GET responses and ``views`` are the two entry points
(``/services/<service>/<path>`` and ``POST /gateway``).
"""
