"""OpenAPI: every operation lists the error responses it can give, in the one error shape."""

from drf_spectacular.openapi import AutoSchema
from rest_framework.permissions import AllowAny, SAFE_METHODS

from station.api.errors import ErrorSerializer

ERRORS = {
    "400": ("Invalid input (fields, filters or query parameters), or a UserError about the input.",
            {"code": "end_before_start", "message": "The window must end after it starts.", "params": {},
             "fields": {"non_field_errors": ["The window must end after it starts."]}}),
    "401": ("No credentials, or a wrong token.",
            {"code": "not_authenticated", "message": "Authentication credentials were not provided.", "params": {},
             "fields": {}}),
    "403": ("A viewer tried to change something, or an operator of another studio's row.",
            {"code": "permission_denied", "message": "You do not have permission to perform this action.",
             "params": {}, "fields": {}}),
    "404": ("No such row in your studios (missing and other studios' rows look the same), or no such page.",
            {"code": "not_found", "message": "Not found.", "params": {}, "fields": {}}),
    "409": ("The row's state forbids this (a UserError such as `transition_not_allowed`), or it overlaps another.",
            {"code": "window_overlap", "message": "This window overlaps another active window on the same recorder.",
             "params": {}, "fields": {}}),
    "429": ("Too many requests; retry after `Retry-After` seconds.",
            {"code": "throttled", "message": "Request was throttled. Expected available in 12 seconds.",
             "params": {"wait_seconds": 12}, "fields": {}}),
}


class StationAutoSchema(AutoSchema):
    """drf-spectacular's schema plus the error responses each kind of operation can give."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status in self._error_statuses():
            description, example = ERRORS[status]
            response = self._get_response_for_code(ErrorSerializer, status, media_types=["application/json"],
                                                   direction=direction)
            response["description"] = description
            response["content"]["application/json"]["examples"] = {example["code"]: {"value": {"error": example}}}
            responses.setdefault(status, response)
        return responses

    def _error_statuses(self) -> list[str]:
        public = any(permission is AllowAny for permission in self.view.permission_classes)
        writes = self.method not in SAFE_METHODS
        listing = self._is_list_view()
        statuses = ["429"]
        if not public:
            statuses.append("401")
        if writes and not public:
            statuses += ["403", "409"]
        if writes or listing or self.get_override_parameters() or self._get_filter_parameters():
            statuses.append("400")
        if "{" in self.path or listing:
            statuses.append("404")
        return sorted(statuses)
