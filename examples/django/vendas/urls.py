from django.urls import path

from . import views

app_name = "vendas"
urlpatterns = [
    path("ask/", views.ask, name="ask"),
    path("chat/", views.chat, name="chat"),
]
