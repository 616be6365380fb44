"""The chat of ../template.yaml on Python and boto3: $connect and $disconnect keep the table of
open connections, sendmessage posts {"data": ...} to every one of them through the API's default
host name."""

import json
import os

import boto3

TABLE = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


def on_connect(event, context):
    TABLE.put_item(Item={"connectionId": event["requestContext"]["connectionId"]})
    return {"statusCode": 200, "body": "Connected."}


def on_disconnect(event, context):
    TABLE.delete_item(Key={"connectionId": event["requestContext"]["connectionId"]})
    return {"statusCode": 200, "body": "Disconnected."}


def send_message(event, context):
    request = event["requestContext"]
    region = os.environ["AWS_REGION"]
    management = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=f"https://{request['apiId']}.execute-api.{region}.amazonaws.com/{request['stage']}",
    )
    data = json.loads(event["body"])["data"]
    recipients = [item["connectionId"] for item in TABLE.scan(ProjectionExpression="connectionId")["Items"]]
    for connection_id in recipients:
        try:
            management.post_to_connection(ConnectionId=connection_id, Data=data.encode())
        except management.exceptions.GoneException:
            TABLE.delete_item(Key={"connectionId": connection_id})
    return {"statusCode": 200, "body": "Sent."}
