"""Email notifications: what the workflow's changes mean for people, told by email.

Listens to the workflow's signals (a transition applied, attention raised) and, on its
sweep, to events from Align waiting too long. Each notification is one row with a unique
key, so a change announced twice (a duplicated or reordered event) is sent once. Sent after
commit, by the web process (ALIGN_EXECUTION=inline) or a Celery worker (celery); a send
that fails is recorded and retried once. No patient data in any email: the case number
and a link. See docs/notifications.md.
"""
