"""Django's PostgreSQL backend, with a connection pool that lets go of all its connections when one is found dead.

A restart or failover of the server ends every connection a web process pools. psycopg's pool
finds that out one connection per attempt, and waits longer after each failed check (1 s, 2 s,
4 s…), so with a few idle connections a request waited 7 s and more, or failed after the pool's
timeout. A dead connection means the others were opened before the same event: the pool drains
them all at the first failed check and opens new ones, so a request waits only for the server.
"""

import psycopg
from django.db.backends.postgresql import base
from django.db.backends.base.base import NO_DB_ALIAS


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        options = self.settings_dict["OPTIONS"].get("pool")
        if (self.alias == NO_DB_ALIAS or not options or self.alias in self._connection_pools
                or not self.settings_dict["CONN_HEALTH_CHECKS"]):
            return super().pool
        from psycopg_pool import ConnectionPool

        alias, pools = self.alias, self._connection_pools

        def check_or_drain(connection) -> None:
            try:
                ConnectionPool.check_connection(connection)
            except psycopg.Error:
                pools[alias].drain()
                raise

        connect_kwargs = {**self.get_connection_params(), "autocommit": True}  # Django sets it per use, as its own does
        pool = ConnectionPool(kwargs=connect_kwargs, open=False, configure=self._configure_connection,
                              check=check_or_drain, **({} if options is True else options))
        pools.setdefault(alias, pool)  # threads that raced here: the first pool wins, as in Django's
        return pools[alias]
