"""Framework integrations: :mod:`sqlxmq_py.integrations.fastapi` (a lifespan that runs a
runner, and a request-scoped transaction to spawn in) and :mod:`sqlxmq_py.integrations.django`
(spawning on Django's own connection, inside ``transaction.atomic()``).

Each module imports its framework, so import the one you use.
"""
