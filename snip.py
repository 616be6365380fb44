import json, socket, struct, urllib.request
from websockets.sync.client import connect
ws = connect("ws://127.0.0.1:8080/dev", subprotocols=["wsgate.reliable.v1"])
hello = json.loads(ws.recv())
ws.send("hello")
msg = json.loads(ws.recv())
print(hello["type"], msg)
ws.send(json.dumps({"type": "ack", "seq": msg["seq"]}))
ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); ws.socket.close()
cid = hello["connectionId"].replace("=", "%3D")
print(urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:8080/dev/@connections/{cid}", data=b"while away", method="POST")).status)
ws = connect(f"ws://127.0.0.1:8080/dev?resume={hello['resumeToken']}&seq={msg['seq']}", subprotocols=["wsgate.reliable.v1"])
print(json.loads(ws.recv())["type"], json.loads(ws.recv()))
