"""What the two work queues (the staff list and the provider's list) share: searches kept
in the session under an opaque id, the filters of an address, sortable column headings
and numbered pages."""

import secrets
from dataclasses import dataclass

from django.contrib import messages
from django.core.paginator import InvalidPage
from django.shortcuts import redirect

from .. import selectors

SEARCHES_KEPT = 20


def save_search(request, key, filters):
    """Keep `filters` in the person's session under a new opaque id (the newest few)."""
    searches = request.session.get(key, {})
    search_id = secrets.token_urlsafe(9)
    searches[search_id] = filters
    request.session[key] = dict(list(searches.items())[-SEARCHES_KEPT:])
    return search_id


def saved_search(request, key):
    """The filters of the search `?s=` names, or None when the session does not hold it."""
    return request.session.get(key, {}).get(request.GET["s"])


def address_filters(request, *, searching):
    """The address's parameters that are filters (not the page; not the search id when a
    saved search is shown)."""
    filters = request.GET.copy()
    filters.pop("page", None)
    if searching:
        filters.pop("s", None)
    return filters


def read_filters(request, *, key, search_form, filter_form, address):
    """A list's filters from its search box (POST), a saved search (`?s=`, with a sort or
    page in the address) or the address: (form, status, redirect or None). A search is
    saved under an opaque id and answered with a redirect to `address?s=<id>`; the sort
    goes in the address (it is not a patient detail)."""
    if request.method == "POST":
        form = search_form(request.POST)
        if not form.is_valid():
            return form, 400, None
        filters = dict(form.cleaned_data)
        sort = filters.pop("sort", "")
        target = f"{address}?s={save_search(request, key, filters)}"
        return form, 302, redirect(f"{target}&sort={sort}" if sort else target)
    if "s" in request.GET:
        saved = saved_search(request, key)
        if saved is None:
            messages.warning(
                request, "That search is no longer available (searches are kept for your session only): search again."
            )
            return search_form(), 404, None
        extra = address_filters(request, searching=True)
        checked = filter_form(extra)
        if extra and not checked.is_valid():  # the address's own additions (a sort) are checked alone
            return checked, 400, None
        return search_form({**saved, **extra.dict()}), 200, None
    filters = address_filters(request, searching=False)
    form = filter_form(filters) if filters else search_form()
    return form, 400 if filters and not form.is_valid() else 200, None


def search_box(search_form, form, filters, invalid):
    """The search box to show: the search itself, or the address's filters (with their
    errors when they were refused)."""
    if isinstance(form, search_form):
        return form
    if not invalid:
        return search_form(initial=filters)
    box = search_form(form.data)
    box.is_valid()
    for error in form.non_field_errors():
        box.add_error(None, error)
    return box


@dataclass(frozen=True)
class Column:
    key: str  # the `sort` value that sorts by this column, ascending
    label: str
    sort: str  # the `sort` value its heading links to
    aria_sort: str  # "ascending", "descending" or "" (not sorted by it)


SORTABLE = (("case", "Case"), ("state", "State"), ("waiting", "Waiting since"))


def columns(sort):
    """The sortable column headings: a heading sorts ascending, or descending when the list
    is already sorted ascending by it; `aria-sort` says how the list is sorted now."""
    result = {}
    for key, label in SORTABLE:
        if sort == key:
            result[key] = Column(key, label, f"-{key}", "ascending")
        elif sort == f"-{key}":
            result[key] = Column(key, label, key, "descending")
        else:
            result[key] = Column(key, label, key, "")
    return result


@dataclass(frozen=True)
class Pages:
    page: object
    links: list  # page numbers, None for a gap
    notice: str  # what was done with a page number that does not exist


def paginate(request, cases, *, per_page, cap, known_count=None):
    """The page of `cases` the address asks for, with its numbered links. A page number
    that is not a number or past the end is said so, and the nearest page shown."""
    asked = request.GET.get("page")
    paginator = selectors.CappedPaginator(cases, per_page, cap=cap, page=asked, known_count=known_count)
    notice = ""
    try:
        page = paginator.page(asked or 1)
    except InvalidPage:
        page = paginator.get_page(asked)
        shown = "the first page" if page.number == 1 else f"the last page, {page.number}"
        notice = f"There is no page “{str(asked)[:20]}” in this list: {shown} is shown."
    return Pages(page, paginator.page_links(page.number), notice)
