"""Serve django-scim2 (tests/peers/django_scim) on a free loopback port.

Usage: DJANGO_SCIM_TOKEN=... DJANGO_SCIM_DB=/tmp/x.sqlite3 python serve.py
Creates the database, listens, then prints one line
`SISYNC_SCIM_URL=http://127.0.0.1:PORT/scim/v2`. Stops on SIGTERM or when
stdin closes (the test process died).
"""
import os
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer.settings")



class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


# Listen first: location URLs carry the port (django-scim2's NETLOC setting).
app = None
server = make_server("127.0.0.1", 0, lambda env, start: app(env, start), handler_class=Quiet)
port = server.server_port
os.environ["DJANGO_SCIM_NETLOC"] = f"127.0.0.1:{port}"

import django  # noqa: E402

django.setup()
from django.core.management import call_command  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

call_command("migrate", verbosity=0)
app = get_wsgi_application()
print(f"SISYNC_SCIM_URL=http://127.0.0.1:{port}/scim/v2", flush=True)


def watch_stdin():
    sys.stdin.read()
    os._exit(0)


threading.Thread(target=watch_stdin, daemon=True).start()
server.serve_forever()
