"""Ordinary Django views; ``announce`` pushes a message to one room."""

from pathlib import Path

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .sio import room_sizes, sio

PAGE = (Path(__file__).parent / 'page.html').read_text(encoding='utf-8')


@require_GET
def index(request):
    return HttpResponse(PAGE)


@require_GET
def rooms(request):
    return JsonResponse(room_sizes())


@csrf_exempt        # an API for curl and scripts; protect it properly in a real project
@require_POST
def announce(request, room):
    text = request.body.decode('utf-8', 'replace').strip()
    if not text:
        return JsonResponse({'error': 'empty announcement'}, status=400)
    sio.emit('announcement', {'text': text[:1000]}, to=room)
    return JsonResponse({'sent': True, 'room': room})
