from django.apps import AppConfig


class WorkflowConfig(AppConfig):
    name = "align_workflow.workflow"
    label = "workflow"
