from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo tooling: seed_demo, run_demo and the adoption of the demo's cases into
    the Align simulator. No models."""

    name = "align_workflow.demo"
    label = "demo"
