"""drf-spectacular postprocessing: the schema says what the API refuses."""


def request_bodies_take_no_other_fields(result, generator, request, public):
    """Mark each operation's request body ``additionalProperties: false``: the API refuses unknown fields (400)."""
    schemas = result.get("components", {}).get("schemas", {})
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                ref = content.get("schema", {}).get("$ref", "")
                component = schemas.get(ref.rpartition("/")[2])
                if component is not None and component.get("type") == "object":
                    component["additionalProperties"] = False
    return result
