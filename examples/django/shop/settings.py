"""Settings of the example shop, from the environment.

``DATABASE_URL``: ``postgresql://user:password@host:5432/name`` or ``sqlite:///db.sqlite3``
(default). ``BILLUMY_URL`` and ``BILLUMY_API_KEY``: where Billumy runs and the key this
backend sends it (an inference key of the tenant that owns the ``shop`` source).
"""

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for development)")
    SECRET_KEY = "django-insecure-development-only"  # noqa: S105 - DEBUG only
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "vendas",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "America/Sao_Paulo"
LANGUAGE_CODE = "pt-br"


def database_from_url(url: str) -> dict[str, Any]:
    """Django's DATABASES entry for a ``postgresql://`` or ``sqlite:///`` URL."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": parts.path[1:] or ":memory:"}
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path[1:]),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    raise ImproperlyConfigured("DATABASE_URL must start with postgresql:// or sqlite:///")


DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
    )
}

# Billumy: the insights and chat service this backend asks.
BILLUMY_URL = os.environ.get("BILLUMY_URL", "http://127.0.0.1:8011")
BILLUMY_API_KEY = os.environ.get("BILLUMY_API_KEY", "")
BILLUMY_SOURCE = os.environ.get("BILLUMY_SOURCE", "shop")  # the [[sources]] name
BILLUMY_TABLE = os.environ.get("BILLUMY_TABLE", "vendas_detalhe")
BILLUMY_MODEL = os.environ.get("BILLUMY_MODEL", "billumy")
BILLUMY_CHAT_MAX_TOKENS = int(os.environ.get("BILLUMY_CHAT_MAX_TOKENS", "256"))
# Seconds: to connect, and for the whole answer (a question reads the source; a chat generates).
BILLUMY_CONNECT_TIMEOUT = float(os.environ.get("BILLUMY_CONNECT_TIMEOUT", "5"))
BILLUMY_TIMEOUT = float(os.environ.get("BILLUMY_TIMEOUT", "60"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"vendas": {"handlers": ["console"], "level": "INFO"}},
}
