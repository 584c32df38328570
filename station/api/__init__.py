"""The REST API's shared parts: error shape, permissions, pagination, throttles, schema, one router."""
