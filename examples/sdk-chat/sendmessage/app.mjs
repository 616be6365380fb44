// sendmessage: {"action": "sendmessage", "data": "..."} goes to every open connection.
import { DynamoDBClient, ScanCommand, DeleteItemCommand } from '@aws-sdk/client-dynamodb';
import {
  ApiGatewayManagementApiClient,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';

const db = new DynamoDBClient({});
const table = process.env.TABLE_NAME;

export const handler = async (event) => {
  const { apiId, stage } = event.requestContext;
  // The API's default host name, as code deployed on API Gateway often builds it.
  const management = new ApiGatewayManagementApiClient({
    endpoint: `https://${apiId}.execute-api.${process.env.AWS_REGION}.amazonaws.com/${stage}`,
  });
  const data = JSON.parse(event.body).data;

  let recipients;
  try {
    const scanned = await db.send(new ScanCommand({ TableName: table, ProjectionExpression: 'connectionId' }));
    recipients = scanned.Items.map((item) => item.connectionId.S);
  } catch (error) {
    return { statusCode: 500, body: error.stack };
  }

  const deliveries = recipients.map(async (connectionId) => {
    try {
      await management.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: data }));
    } catch (error) {
      if (error.$metadata?.httpStatusCode !== 410) throw error;
      // Gone: the client left without the gateway noticing in time.
      await db.send(new DeleteItemCommand({ TableName: table, Key: { connectionId: { S: connectionId } } }));
    }
  });
  try {
    await Promise.all(deliveries);
  } catch (error) {
    return { statusCode: 500, body: error.stack };
  }
  return { statusCode: 200, body: 'Sent.' };
};
