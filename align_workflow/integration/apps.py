from django.apps import AppConfig


class IntegrationConfig(AppConfig):
    name = "align_workflow.integration"
    label = "integration"
