"""A handler in a sub-folder without __init__.py (namespace package), as `pkg/sub/app.handler`."""
from . import helper


def handler(event, context):
    return {"module": __name__, "helper": helper.VALUE, "body": event.get("body")}
