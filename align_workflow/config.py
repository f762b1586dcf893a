"""Typed readers of the environment for settings.py: every variable is read through one of these.

Each reader takes the variable's name and its default (used when the variable is unset) and
returns a value of one type. A value that does not parse, or is out of its range, stops
start-up with ImproperlyConfigured naming the variable and what is wrong with it, e.g.

    Environment variable "ALIGN_RETRY_MAX_ATTEMPTS" invalid: Not a valid integer.

The value itself is never repeated (it may be a secret or a URL with a password in it).
Parsing and the messages come from environs (marshmallow fields and validators).
"""

from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ImproperlyConfigured
from environs import Env, EnvError
from marshmallow.validate import Range

_env = Env(expand_vars=False)

# The schemes each kind of URL may have.
HTTP = ("http", "https")
REDIS = ("redis", "rediss")
BROKER = ("redis", "rediss", "amqp", "amqps")
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def _read(parse, name, default, **options):
    try:
        return parse(name, default, **options)
    except EnvError as error:
        raise ImproperlyConfigured(str(error)) from None


def env_str(name: str, default: str) -> str:
    """Any text (secrets, ids, names)."""
    return _read(_env.str, name, default)


def env_bool(name: str, default: bool) -> bool:
    """1/true/yes/on or 0/false/no/off (any case); anything else is refused."""
    return _read(_env.bool, name, default)


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    validate = Range(min=minimum) if minimum is not None else None
    return _read(_env.int, name, default, validate=validate)


def env_float(name: str, default: float, *, above: float | None = None, minimum: float | None = None) -> float:
    """A finite number (nan and infinity are refused), greater than `above` / at least
    `minimum` when given."""
    validate = None
    if above is not None:
        validate = Range(min=above, min_inclusive=False)
    elif minimum is not None:
        validate = Range(min=minimum)
    return _read(_env.float, name, default, validate=validate)


def env_choice(name: str, default: str, choices, *, upper: bool = False) -> str:
    value = env_str(name, default)
    value = value.upper() if upper else value
    if value not in choices:
        raise ImproperlyConfigured(f'Environment variable "{name}" invalid: Must be one of: {", ".join(choices)}.')
    return value


def env_url(name: str, default: str, *, schemes=HTTP, allow=()) -> str:
    """An absolute URL with one of `schemes` (a host name needs no dot: `http://align-service:8080`).

    `allow` lists words that are accepted as they are (ALIGN_VAULT_URL's "local").
    """
    value = env_str(name, default)
    if value in allow:
        return value
    parsed = _read(_env.url, name, default, schemes=set(schemes), require_tld=False)
    return parsed if isinstance(parsed, str) else parsed.geturl()  # unset: the default as it is


def env_list(name: str, default: str) -> list[str]:
    """Comma-separated; empty items are dropped."""
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_database(name: str, default: str, **options) -> dict:
    """A database URL, parsed by dj-database-url into Django's DATABASES entry."""
    return _read(_env.dj_db_url, name, default, **options)


def env_time_zone(name: str, default: str) -> str:
    """An IANA time zone name, e.g. Europe/Berlin (the tz database Python ships with)."""
    value = env_str(name, default).strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(f'Environment variable "{name}" invalid: Not a known time zone name.') from None
    return value


def env_link_templates(name: str, default: dict, *, placeholder: str) -> dict:
    """A JSON object of name -> http(s) URL template with `placeholder` in it, added to
    (and overriding) `default`; a name with an empty template is removed."""
    value = _read(_env.json, name, None)
    if value is None:
        return dict(default)
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f'Environment variable "{name}" invalid: Not a JSON object.')
    merged = dict(default)
    for key, template in value.items():
        if template in ("", None):
            merged.pop(key, None)
            continue
        if (
            not isinstance(template, str)
            or placeholder not in template
            or urlsplit(template).scheme not in HTTP
            or not urlsplit(template).netloc
        ):
            raise ImproperlyConfigured(
                f'Environment variable "{name}" invalid: each value must be an http(s) URL containing {placeholder}.'
            )
        merged[key] = template
    return merged
