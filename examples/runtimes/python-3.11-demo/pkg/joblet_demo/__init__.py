"""A tiny package provided by the python-3.11-demo runtime."""

__version__ = "0.1.0"


def greet(who: str) -> str:
    return f"hello {who} from joblet_demo {__version__}"
