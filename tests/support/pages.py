"""Reading what a portal page told its user."""

import html

from django.utils.html import strip_tags


def messages_of(response):
    """The messages as a person reads them: their words, without the markup of their link
    and small print (the technical code is still in the text)."""
    return [html.unescape(strip_tags(str(m))) for m in response.context["messages"]] if response.context else []


def raw_messages_of(response):
    """The messages with their markup (links, small print, tooltips)."""
    return [(m.level, str(m)) for m in response.context["messages"]] if response.context else []
