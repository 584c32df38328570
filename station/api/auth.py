"""The token endpoint's input: a username and password, checked under the failed-login limiter."""

from drf_spectacular.utils import extend_schema_serializer
from rest_framework.authtoken.serializers import AuthTokenSerializer

from station.api.base import RefusesUnknownFields
from station.api.throttling import LoginThrottled
from station.login_throttle import LoginLocked, client_address, login_attempt


@extend_schema_serializer(component_name="AuthToken")  # the schema's name for it before the limiter
class LoginSerializer(RefusesUnknownFields, AuthTokenSerializer):
    """DRF's username and password, refused with 429 once the username or the address failed too often."""

    def validate(self, attrs):
        try:
            with login_attempt(username=attrs["username"], address=client_address(self.context["request"])):
                return super().validate(attrs)
        except LoginLocked as locked:
            raise LoginThrottled(locked) from locked
