"""A Flask app with ordinary routes plus realtime messages over Engine.IO.

Every message a browser sends is broadcast to everyone connected; the ordinary
route ``POST /api/announce`` pushes a message to everyone from plain Flask code;
``GET /api/stats`` reports who is connected. See README.md for how to run it.
"""

from __future__ import annotations

import json
import threading

from flask import Flask, jsonify, render_template, request

import engineio_wsgi

app = Flask(__name__)
eio = engineio_wsgi.Server()
# Engine.IO requests (under /engine.io/) go to eio, everything else to Flask.
app.wsgi_app = engineio_wsgi.WSGIApp(eio, app.wsgi_app)

clients: set[str] = set()
clients_lock = threading.Lock()
stats = {'messages': 0}


def broadcast(message: dict) -> None:
    """Send ``message`` (as JSON text) to every connected client."""
    text = json.dumps(message)
    with clients_lock:
        targets = list(clients)
    for sid in targets:
        eio.send(sid, text)     # a client gone meanwhile is skipped


@eio.on('connect')
def connect(sid, environ):
    with clients_lock:
        clients.add(sid)
    eio.send(sid, json.dumps({'type': 'welcome', 'you': sid[:6], 'online': len(clients)}))


@eio.on('message')
def message(sid, data):
    if not isinstance(data, str):
        return                  # this app only deals in text
    stats['messages'] += 1
    broadcast({'type': 'chat', 'from': sid[:6], 'text': data[:1000]})


@eio.on('disconnect')
def disconnect(sid, reason):
    with clients_lock:
        clients.discard(sid)


# -- ordinary Flask routes --------------------------------------------------------

@app.route('/')
def index():
    return render_template('index.html')


@app.route('/api/stats')
def api_stats():
    with clients_lock:
        online = len(clients)
    return jsonify(online=online, messages=stats['messages'])


@app.route('/api/announce', methods=['POST'])
def api_announce():
    text = request.get_data(as_text=True).strip()
    if not text:
        return jsonify(error='empty announcement'), 400
    broadcast({'type': 'announcement', 'text': text[:1000]})
    return jsonify(sent=True)
