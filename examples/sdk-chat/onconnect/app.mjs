// $connect: keep the new connection's id in the connections table.
import { DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';

const db = new DynamoDBClient({});

export const handler = async (event) => {
  const id = event.requestContext.connectionId;
  await db.send(new PutItemCommand({
    TableName: process.env.TABLE_NAME,
    Item: { connectionId: { S: id } },
  }));
  console.log(`connected ${id}`);
  return { statusCode: 200, body: 'Connected.' };
};
