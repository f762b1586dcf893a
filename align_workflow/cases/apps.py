from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "align_workflow.cases"
    label = "cases"
