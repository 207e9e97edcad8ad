from django.urls import path

from . import views

urlpatterns = [
    path('', views.index),
    path('api/rooms', views.rooms),
    path('api/rooms/<str:room>/announce', views.announce),
]
