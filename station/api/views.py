from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from station import calendars, services
from station.api.auth import LoginSerializer
from station.api.base import RowListMixin, StudioScopedViewSet
from station.api.errors import error_body
from station.api.permissions import SuperuserWrites
from station.api.serializers import AlertSerializer, NodeSerializer, StudioSerializer, TokenSerializer
from station.models import Alert, Node, Studio


class TokenView(APIView):
    """Exchange a username and password for an API token (the same token on every call).

    Failed logins are limited per username and per address, together with the admin's (429 ``login_locked``).
    """

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(
        request=LoginSerializer,
        responses={200: TokenSerializer},
        examples=[OpenApiExample("Log in", value={"username": "demo", "password": "demo"}, request_only=True),
                  OpenApiExample("Token", value={"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"}, response_only=True)],
        tags=["auth"],
    )
    def post(self, request):
        serializer = LoginSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        token, _created = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})


class StudioViewSet(StudioScopedViewSet):
    """Studios you belong to; superusers create and delete them, operators rename them."""

    queryset = Studio.objects.all()
    serializer_class = StudioSerializer
    filterset_fields = ["slug", "time_zone"]
    ordering_fields = ["name", "slug", "created_at"]

    def get_queryset(self):
        return calendars.prefetch_feeds(super().get_queryset())

    def get_permissions(self):
        if self.action in ("create", "destroy"):
            return [SuperuserWrites()]
        return super().get_permissions()


@extend_schema_view(
    create=extend_schema(description="Register a host before its agent first runs (superusers): an agent started with "
                         "`run_node --name` takes the node of that name, with the capabilities and state given here."),
    update=extend_schema(description="Enable or disable a node, rename it or change its capabilities (superusers). "
                         "An agent finds its node by name, so an online node can't be renamed (409 `node_online`)."),
    destroy=extend_schema(description="Remove a node (superusers). An online node (409 `node_online`) or one that "
                          "channels or recorders are placed on (409 `protected`) stays."),
)
class NodeViewSet(RowListMixin, mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                  mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Media hosts; they serve every studio, so every member may look and only superusers change them (as in the admin)."""

    queryset = Node.objects.all()
    serializer_class = NodeSerializer
    permission_classes = [SuperuserWrites]
    filterset_fields = ["enabled"]
    ordering_fields = ["name", "last_heartbeat_at"]

    def perform_destroy(self, instance):
        services.node_remove(node=instance)


class AlertViewSet(RowListMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """What the on-air desk must look at; acknowledged once by an operator."""

    queryset = Alert.objects.all()
    serializer_class = AlertSerializer
    filterset_fields = {"studio": ["exact"], "severity": ["exact"], "code": ["exact"], "acknowledged_at": ["isnull"],
                        "created_at": ["gte", "lt"]}
    ordering_fields = ["created_at", "severity"]

    def get_queryset(self):
        return super().get_queryset().visible_to(self.request.user)

    @extend_schema(request=None, responses={200: AlertSerializer}, description="Mark the alert seen; acknowledging it twice is a 409.")
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        alert = services.alert_acknowledge(alert=self.get_object(), user=request.user)
        return Response(self.get_serializer(alert).data, status=status.HTTP_200_OK)


def not_found(request, exception):
    """A URL no route matches: under /api/ in the one error shape, elsewhere Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", exceptions.NotFound.default_detail), status=404)
    return defaults.page_not_found(request, exception)
