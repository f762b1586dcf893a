"""Settings: embedded defaults for `make run`, production values from the environment.

Unset DATABASE_URL -> SQLite; unset REDIS_URL -> local-memory cache. Everything that
talks to Align reads ALIGN_* variables; the defaults match the bundled simulator.
Every variable is read through align_workflow.config's typed readers: a bad value stops
start-up with ImproperlyConfigured naming the variable (docs/operations.md lists them all).
"""

from datetime import timedelta
from pathlib import Path

from align_workflow.config import (
    BROKER,
    LOG_LEVELS,
    REDIS,
    env_bool,
    env_choice,
    env_database,
    env_float,
    env_int,
    env_link_templates,
    env_list,
    env_str,
    env_time_zone,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent


# Off unless DJANGO_DEBUG=1 (`make run` and the tests set it). With DEBUG off, a secret
# left at its public demo value (or unset) is a system-check error (align_workflow.E002)
# and the WSGI application refuses to start: production fails closed.
DEBUG = env_bool("DJANGO_DEBUG", False)
# The public values the demo and the simulator use; never acceptable with DEBUG off.
DEMO_SECRETS = {
    "SECRET_KEY": "insecure-dev-key-for-the-embedded-demo-only",
    "ALIGN_CLIENT_SECRET": "demo-secret",
    "ALIGN_EVENTS_SECRET": "whsec_ZGVtby1ldmVudHMtc2VjcmV0LWtleS0zMmJ5dGVzISE=",
    "ALIGN_INBOUND_TOKEN": "demo-inbound-token",
    # Checked only when the vault is an HTTP API (ALIGN_VAULT_URL other than "local").
    "ALIGN_VAULT_API_KEY": "demo-vault-key",
    # Optional: unset turns the shop's purchase API off; only the demo value is refused.
    "SHOP_API_TOKEN": "demo-shop-token",
}
SECRET_KEY = env_str("DJANGO_SECRET_KEY", DEMO_SECRETS["SECRET_KEY"])
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    # First, so its admin/base_site.html (the admin's branding) overrides Django's.
    "align_workflow.portals",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_fsm_log",
    "waffle",
    "axes",
    "align_workflow.cases",
    "align_workflow.workflow",
    "align_workflow.integration",
    "align_workflow.notifications",
    "align_workflow.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The portals' 403/404/405 pages, DEBUG on or off (align_workflow/portals/middleware.py).
    "align_workflow.portals.middleware.ErrorPagesMiddleware",
    "waffle.middleware.WaffleMiddleware",
    # Last: turns a locked-out sign-in into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "align_workflow.urls"
WSGI_APPLICATION = "align_workflow.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env_database(
        "DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=env_int("DB_CONN_MAX_AGE", 0, minimum=0)
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Wait for a writer instead of failing at once when the simulator's callbacks,
    # the retry loop and a page write at the same moment.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"  # StateLog.object_id is an integer

REDIS_URL = env_url("REDIS_URL", "", schemes=REDIS, allow=("",))
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "align-workflow"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# Login throttling (django-axes) on the portals' and the admin's sign-in: after
# LOGIN_FAILURE_LIMIT wrong passwords for one user name from one address, that user name
# is refused from there (the lock-out page, 429) until LOGIN_LOCKOUT_MINUTES have passed
# or an administrator deletes the entry in the admin (Axes > Access attempts).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 30, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "portals/locked_out.html"
AXES_VERBOSE = False
LOGIN_URL = "/accounts/login/"
# A form sent from an out-of-date page: the portals' 403 page, with the way back to the case.
CSRF_FAILURE_VIEW = "align_workflow.portals.views.errors.csrf_failure"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
# The clinic's time zone: every time a page shows is in it, with the zone's name (stored in UTC).
TIME_ZONE = env_time_zone("CLINIC_TIME_ZONE", "UTC")
# Dates and times as 2026-12-01 14:05 UTC wherever Django formats them (the admin included).
FORMAT_MODULE_PATH = ["align_workflow.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "var" / "static")))  # collectstatic writes here
# Front-end packages from package.json: only the files the pages use, not all of node_modules/.
STATICFILES_DIRS = [
    (prefix, BASE_DIR / "node_modules" / prefix)
    for prefix in ["html2canvas/dist"]
    if (BASE_DIR / "node_modules" / prefix).is_dir()
]
# The carrier's tracking page for a shipment, by carrier name as Align sends it (any case):
# CARRIER_TRACKING_URLS, a JSON object, adds to or replaces these; {number} is the tracking number.
CARRIER_TRACKING_URLS = env_link_templates(
    "CARRIER_TRACKING_URLS",
    {
        "UPS": "https://www.ups.com/track?tracknum={number}",
        "FedEx": "https://www.fedex.com/fedextrack/?trknbr={number}",
        "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={number}",
        "DHL": "https://www.dhl.com/global-en/home/tracking/tracking-express.html?submit=1&tracking-id={number}",
    },
    placeholder="{number}",
)
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))

if not DEBUG:
    # Serves collectstatic's output (STATIC_ROOT), e.g. under gunicorn; runserver does it with DEBUG on.
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
        "whitenoise.middleware.WhiteNoiseMiddleware",
    )
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Waffle: flags are created by a migration; an unknown flag is off.
WAFFLE_FLAG_DEFAULT = False
WAFFLE_CREATE_MISSING_FLAGS = False

# --- The Align integration service ---------------------------------------------------
ALIGN_SERVICE_URL = env_url("ALIGN_SERVICE_URL", "http://127.0.0.1:8765")
ALIGN_CLIENT_ID = env_str("ALIGN_CLIENT_ID", "demo")
ALIGN_CLIENT_SECRET = env_str("ALIGN_CLIENT_SECRET", DEMO_SECRETS["ALIGN_CLIENT_SECRET"])
ALIGN_EVENTS_SECRET = env_str("ALIGN_EVENTS_SECRET", DEMO_SECRETS["ALIGN_EVENTS_SECRET"])
ALIGN_INBOUND_TOKEN = env_str("ALIGN_INBOUND_TOKEN", DEMO_SECRETS["ALIGN_INBOUND_TOKEN"])
# Bearer token the shop presents to report an aligner purchase (POST /api/cases/<id>/aligners-purchased).
# The demo value only with DEBUG on; otherwise unset unless given, and the API then refuses every report.
SHOP_API_TOKEN = env_str("SHOP_API_TOKEN", DEMO_SECRETS["SHOP_API_TOKEN"] if DEBUG else "")
ALIGN_CONNECT_TIMEOUT = env_float("ALIGN_CONNECT_TIMEOUT", 3.05, above=0)
ALIGN_READ_TIMEOUT = env_float("ALIGN_READ_TIMEOUT", 10, above=0)
ALIGN_CHIEF_CONCERN = env_str(
    "ALIGN_CHIEF_CONCERN", "Patient would like to straighten their teeth with clear aligners."
)
APP_BASE_URL = env_url("APP_BASE_URL", "http://127.0.0.1:8000")
# inline: calls run in this process right after commit; celery: on Celery workers.
ALIGN_EXECUTION = env_choice("ALIGN_EXECUTION", "inline", ("inline", "celery"))
ALIGN_RETRY_MAX_ATTEMPTS = env_int("ALIGN_RETRY_MAX_ATTEMPTS", 5, minimum=1)
ALIGN_RETRY_BASE_SECONDS = env_float("ALIGN_RETRY_BASE_SECONDS", 30, above=0)
# How long a process keeps a waffle flag it read (a flag switched off elsewhere stops new calls within this).
ALIGN_FLAG_CACHE_SECONDS = env_float("ALIGN_FLAG_CACHE_SECONDS", 2, minimum=0)
# How long a claimed outbound call may run before another process may take it over.
ALIGN_CALL_LEASE_SECONDS = env_float("ALIGN_CALL_LEASE_SECONDS", 120, above=0)
# The longest wait between two automatic attempts (the backoff doubles up to this).
ALIGN_RETRY_MAX_DELAY_SECONDS = env_float("ALIGN_RETRY_MAX_DELAY_SECONDS", 3600, above=0)
# How often the Celery beat sweep (and `align_retry_due --loop`) looks for due retries and expired leases.
ALIGN_SWEEP_SECONDS = env_float("ALIGN_SWEEP_SECONDS", 15, above=0)
# The provider's acceptance screenshot (a data URL): limits on the encoded text and on the pixel count.
ALIGN_SCREENSHOT_MAX_BYTES = env_int("ALIGN_SCREENSHOT_MAX_BYTES", 10 * 1024 * 1024, minimum=1)
ALIGN_SCREENSHOT_MAX_PIXELS = env_int("ALIGN_SCREENSHOT_MAX_PIXELS", 25_000_000, minimum=1)
# The vault for acceptance screenshots: "local" (embedded) or the URL of a TrueVault-style API.
ALIGN_VAULT_URL = env_url("ALIGN_VAULT_URL", "local", allow=("local",))
ALIGN_VAULT_ID = env_str("ALIGN_VAULT_ID", "00000000-0000-4000-8000-00000000a119")
ALIGN_VAULT_API_KEY = env_str("ALIGN_VAULT_API_KEY", DEMO_SECRETS["ALIGN_VAULT_API_KEY"])
# A pending inbound event older than this needs attention; a case unchanged this long is stuck.
ALIGN_EVENT_PENDING_ATTENTION_SECONDS = env_int("ALIGN_EVENT_PENDING_ATTENTION_SECONDS", 6 * 3600, minimum=1)
# An event whose occurred_at is further in the future than this is refused (400): one bad
# clock must not make every later status look older than it.
ALIGN_EVENT_FUTURE_SKEW_SECONDS = env_int("ALIGN_EVENT_FUTURE_SKEW_SECONDS", 300, minimum=0)
ALIGN_STUCK_AFTER_SECONDS = env_int("ALIGN_STUCK_AFTER_SECONDS", 7 * 24 * 3600, minimum=1)

# --- Email notifications (align_workflow/notifications, docs/notifications.md) ----------
# Django's email framework. Unset, the console backend with DEBUG on (`make run` prints each
# email) and SMTP otherwise; the tests use Django's in-memory outbox.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Seconds before an SMTP connection attempt gives up (a server that is down never hangs a worker).
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT", 10, above=0)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Align workflow <align-workflow@localhost>")
# The file backend's folder (EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend).
EMAIL_FILE_PATH = Path(env_str("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail")))
# Staff addresses told when a case needs attention or events from Align wait too long.
ALIGN_ATTENTION_EMAILS = env_list("ALIGN_ATTENTION_EMAILS", "")
# This app's address as people reach it, for the links in emails (APP_BASE_URL is the service's view).
ALIGN_PUBLIC_URL = env_url("ALIGN_PUBLIC_URL", APP_BASE_URL)
# How long after a failed send the one retry is due.
ALIGN_NOTIFICATION_RETRY_SECONDS = env_int("ALIGN_NOTIFICATION_RETRY_SECONDS", 300, minimum=1)

# --- Celery (used when ALIGN_EXECUTION=celery) --------------------------------------
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", REDIS_URL or "redis://127.0.0.1:6379/0", schemes=BROKER)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "align")
# `celery -A align_workflow beat`: queue due retries and take over expired leases.
CELERY_BEAT_SCHEDULE = {
    "align-sweep": {"task": "align.sweep", "schedule": ALIGN_SWEEP_SECONDS},
    # Due email retries and events from Align waiting too long (send_notifications does the same).
    "notifications-sweep": {"task": "notifications.sweep", "schedule": 60.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "align_workflow": {
            "handlers": ["console"],
            "level": env_choice("ALIGN_LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
        },
        "align_simulator": {
            "handlers": ["console"],
            "level": env_choice("ALIGN_LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
        },
    },
}
