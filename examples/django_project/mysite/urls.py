from django.urls import path

from . import views

urlpatterns = [
    path('', views.index),
    path('api/stats', views.stats),
    path('api/announce', views.announce),
]
