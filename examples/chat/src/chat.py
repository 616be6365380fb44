"""A chat over API Gateway WebSockets: connect, join a room, send to the others in it.

The same code runs on AWS (deployed with template.yaml or serverless.yml) and under
`wsgate dev`, unchanged. State lives in DynamoDB; locally, AWS_ENDPOINT_URL_DYNAMODB points boto3
at moto's server mode. Messages reach the other connections through the management API at the
callback URL built from the event, https://{domainName}/{stage}, as AWS documents it.
"""

import json
import os

import boto3
from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

TABLE_NAME = os.environ["TABLE_NAME"]
dynamodb = boto3.resource("dynamodb")
table = dynamodb.Table(TABLE_NAME)


def _create_table_when_local():
    """On AWS the template creates the table; against a local DynamoDB, create it if missing."""
    if not os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        return
    try:
        table.load()
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        try:
            dynamodb.create_table(
                TableName=TABLE_NAME,
                KeySchema=[{"AttributeName": "connectionId", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "connectionId", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            ).wait_until_exists()
        except ClientError as race:
            if race.response["Error"]["Code"] != "ResourceInUseException":
                raise


_create_table_when_local()


def _connection_id(event):
    return event["requestContext"]["connectionId"]


def connect(event, context):
    """$connect: remember the connection, in the lobby, under the name it gave (?name=...)."""
    query = event.get("queryStringParameters") or {}
    table.put_item(
        Item={"connectionId": _connection_id(event), "room": "lobby", "name": query.get("name", "anonymous")}
    )
    return {"statusCode": 200}


def disconnect(event, context):
    """$disconnect: forget the connection."""
    table.delete_item(Key={"connectionId": _connection_id(event)})
    return {"statusCode": 200}


def join(event, context):
    """{"action": "join", "room": "..."}: move to a room; the answer goes back (route response)."""
    room = json.loads(event.get("body") or "{}").get("room") or "lobby"
    table.update_item(
        Key={"connectionId": _connection_id(event)},
        UpdateExpression="SET room = :room",
        ExpressionAttributeValues={":room": room},
    )
    return {"statusCode": 200, "body": json.dumps({"joined": room})}


def send(event, context):
    """{"action": "sendmessage", "text": "..."}: post the text to everyone else in the room."""
    context_ = event["requestContext"]
    me = context_["connectionId"]
    text = json.loads(event.get("body") or "{}").get("text", "")
    sender = table.get_item(Key={"connectionId": me}).get("Item", {})
    room = sender.get("room", "lobby")
    api = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=f"https://{context_['domainName']}/{context_['stage']}",
    )
    message = json.dumps({"from": sender.get("name", "anonymous"), "room": room, "text": text}).encode()
    others = table.scan(FilterExpression=Attr("room").eq(room))["Items"]
    for item in others:
        if item["connectionId"] == me:
            continue
        try:
            api.post_to_connection(ConnectionId=item["connectionId"], Data=message)
        except api.exceptions.GoneException:
            table.delete_item(Key={"connectionId": item["connectionId"]})
    return {"statusCode": 200}
