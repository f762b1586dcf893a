"""Template words of the portals: a state's label (states/), and the confirmation of an
irreversible action (the dialog and the page shown without JavaScript say the same)."""

from django import template

from states import align_case as wf

from ..wording import confirmation

register = template.Library()


@register.filter
def state_label(state):
    """{{ case.state|state_label }}: "plan received" for plan_received."""
    return wf.state_label(str(state or ""))


@register.filter
def state_meaning(state):
    return wf.MEANINGS.get(str(state or ""), "")


@register.inclusion_tag("portals/_confirm.html", takes_context=True)
def confirm_dialog(context, action):
    """{% confirm_dialog "cancel" %}: the dialog shown before the form of `action` is sent
    (the form carries data-confirm="confirm-<action>" and a hidden confirm field)."""
    return {"action": action, "c": confirmation(action, flag_on=context.get("acceptance_flag_on", True))}
