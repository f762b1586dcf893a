from django.core.management.base import BaseCommand, CommandError
from graphviz import ExecutableNotFound

from align_workflow.workflow.diagrams import generated_files


class Command(BaseCommand):
    help = "Write diagrams/align_case.dot and .svg from states/ (--check: fail if they are stale)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="exit non-zero if the committed files differ")

    def handle(self, *args, check=False, **options):
        stale = []
        try:
            files = generated_files()
        except ExecutableNotFound:
            raise CommandError(
                "render_diagrams needs Graphviz's dot program: run `make system-deps` "
                "(it installs the Debian package graphviz)."
            ) from None
        for path, content in files.items():
            current = path.read_text(encoding="utf-8") if path.exists() else None
            if current == content:
                continue
            if check:
                stale.append(path.name)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8")
                self.stdout.write(f"wrote {path}")
        if stale:
            raise CommandError(
                f"diagrams are stale: {', '.join(stale)}. Run `python manage.py render_diagrams` and commit diagrams/."
            )
        if check:
            self.stdout.write("diagrams are up to date")
