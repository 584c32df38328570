"""Who may do what through the API: studio membership, as in the admin.

Rows are looked up among those the user may see (``visible_to``), so another studio's row is
404 like a missing one. Writes need an operator role: viewers get 403 before their input is
read, and an operator of another studio's row gets 403 from the object check.
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from station.selectors import is_operator


class StudioPermission(BasePermission):
    """Members read their studios' rows; operators change them; superusers do anything."""

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or user.is_superuser or is_operator(user)

    def has_object_permission(self, request, view, obj):
        if request.method in SAFE_METHODS or request.user.is_superuser:
            return True
        return type(obj)._default_manager.editable_by(request.user).filter(pk=obj.pk).exists()


class SuperuserWrites(BasePermission):
    """Rows every studio shares (nodes) or that hold studios (studio creation): superusers write."""

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or user.is_superuser
