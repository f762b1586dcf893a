"""Reading what a portal page told its user."""


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []
