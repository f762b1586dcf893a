"""Date and time formats (settings.FORMAT_MODULE_PATH): times everywhere Django formats them
(the admin, `|date` without a format) read 2026-12-01 14:05 UTC, with their time zone."""
