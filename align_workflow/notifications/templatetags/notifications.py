from django import template

from align_workflow.notifications.waiting import waiting_for

register = template.Library()


@register.inclusion_tag("notifications/_waiting.html", takes_context=True)
def waiting_list(context):
    """The top bar's "3 plans wait for you" (a provider's pages) / "2 cases need attention" (staff)."""
    request = context.get("request")
    if request is None:
        return {"waiting": None}
    return {"waiting": waiting_for(request.user, provider_page=context.get("nav") == "provider")}
