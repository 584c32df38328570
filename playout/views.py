from django.core import signing
from django.http import FileResponse, Http404
from django.views.decorators.http import require_GET

from ingest.models import MediaAsset
from playout.cacher import asset_id_from_token
from station.models import Node


@require_GET
def node_media(request, node_id: int, token: str):
    """A ready asset's file for a node's cacher; the token, signed with that node's key and expiring, is the authentication."""
    node = Node.objects.filter(pk=node_id).only("media_key").first()
    try:
        if node is None:
            raise signing.BadSignature
        asset_id = asset_id_from_token(token, node=node)
    except signing.BadSignature:  # SignatureExpired included
        raise Http404("Unknown or expired media link.") from None
    asset = MediaAsset.objects.filter(pk=asset_id, status=MediaAsset.Status.READY).exclude(file="").first()
    if asset is None:
        raise Http404("No ready media for this link.")
    try:
        return FileResponse(asset.file.open("rb"), as_attachment=True, filename=asset.file.name.rsplit("/", 1)[-1])
    except FileNotFoundError:
        raise Http404("The media's file is missing from the library.") from None
