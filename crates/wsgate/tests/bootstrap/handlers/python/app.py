"""Fixture handlers for the Python bootstrap tests (run unchanged, as on AWS Lambda)."""
import decimal
import logging
import os
import sys
import time

logger = logging.getLogger()
logger.setLevel(logging.INFO)

counter = 0
LOADED_AT = time.time()


def echo(event, context):
    return {"statusCode": 200, "body": event["body"]}


def ctx(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.05)
    second = context.get_remaining_time_in_millis()
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_first": first,
        "remaining_second": second,
        "identity_is_none": context.identity is None,
        "client_context_is_none": context.client_context is None,
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        "cwd": os.getcwd(),
        "sys_path_0": sys.path[0],
    }


def count(event, context):
    global counter
    counter += 1
    return {"count": counter, "pid": os.getpid()}


def maybe_fail(event, context):
    if event.get("fail"):
        raise ValueError("boom: " + str(event.get("fail")))
    return {"ok": True}


def unserializable(event, context):
    return {"s": {1, 2}}


def logs(event, context):
    print("stdout line from handler")
    print("stderr line from handler", file=sys.stderr)
    logger.info("logged at info")
    return None


def decimals(event, context):
    return {"n": decimal.Decimal("1.5"), "i": decimal.Decimal("3")}


def exits(event, context):
    sys.exit(3)


not_callable = 42


def identity(event, context):
    return {
        "cognito_identity_id": context.identity.cognito_identity_id,
        "cognito_identity_pool_id": context.identity.cognito_identity_pool_id,
        "client_custom": context.client_context.custom,
        "client_app_title": context.client_context.client.app_title,
    }
