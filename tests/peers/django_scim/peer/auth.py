"""Bearer-token auth: a request with the token is the (only) SCIM client;
django-scim2's SCIMAuthCheckMiddleware answers 401 to anything else."""
import hmac
import os
from types import SimpleNamespace

TOKEN = os.environ["DJANGO_SCIM_TOKEN"]


class BearerTokenMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        got = request.headers.get("Authorization", "")
        ok = hmac.compare_digest(got.encode(), f"Bearer {TOKEN}".encode())
        request.user = SimpleNamespace(is_authenticated=ok)
        return self.get_response(request)
