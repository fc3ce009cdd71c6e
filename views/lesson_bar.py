"""The bar above every view while a lesson is being stepped through (called from app.py)."""


def show(nav) -> None:
    """Nothing yet."""
    return None
