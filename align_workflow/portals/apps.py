from django.apps import AppConfig


class PortalsConfig(AppConfig):
    name = "align_workflow.portals"
    label = "portals"
