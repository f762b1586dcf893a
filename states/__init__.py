"""What the Align case workflow is, as plain data (no Django). Start with align_case.py."""
