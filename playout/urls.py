from django.urls import path

from playout import views

app_name = "playout"
urlpatterns = [
    path("media/<int:node_id>/<str:token>", views.node_media, name="node-media"),
]
