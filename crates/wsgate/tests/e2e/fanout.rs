//! Beyond API Gateway: broadcast, batch sends, groups, users, queries, `"wsgate"` directives in
//! integration results, slow readers during fan-out, and the OpenAPI document.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

async fn gateway(extra: &str) -> (Running, Stub) {
    let stub = Stub::start().await;
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .http("$disconnect", &stub.url("/disconnect"), false)
        .http("join", &stub.url("/join"), true)
        .toml(extra)
        .start()
        .await;
    (gw, stub)
}

fn mgmt(gw: &Running, path: &str) -> String {
    format!("http://{}/dev/{path}", gw.addr())
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("json")
}

async fn nothing_for(client: &mut Client, wait: Duration) -> bool {
    tokio::time::timeout(wait, client.next()).await.is_err()
}

#[tokio::test]
async fn broadcast_reaches_everyone_but_the_excepted_with_and_without_stage() {
    let (gw, stub) = gateway("").await;
    let (mut a, ida) = connect_with_id(&gw, &stub).await;
    let (mut b, _) = connect_with_id(&gw, &stub).await;
    let (mut c, _) = connect_with_id(&gw, &stub).await;
    let response = http()
        .post(mgmt(&gw, "@broadcast"))
        .body("to all")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(json_of(response).await, json!({"recipients": 3}));
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(next_text(client).await, "to all");
    }
    let url = format!(
        "http://{}/@broadcast?except={}",
        gw.addr(),
        ida.replace('=', "%3D")
    );
    let response = http().post(url).body("not a").send().await.expect("post");
    assert_eq!(json_of(response).await, json!({"recipients": 2}));
    assert_eq!(next_text(&mut b).await, "not a");
    assert_eq!(next_text(&mut c).await, "not a");
    assert!(nothing_for(&mut a, Duration::from_millis(200)).await);
    let binary = http()
        .post(mgmt(&gw, "@broadcast"))
        .body(vec![0xffu8, 0])
        .send()
        .await
        .expect("post");
    assert_eq!(binary.status().as_u16(), 200);
    assert_eq!(next(&mut a).await, Message::binary(vec![0xff, 0]));
}

#[tokio::test]
async fn batch_post_reports_sent_and_gone_and_rejects_bad_input() {
    let (gw, stub) = gateway("").await;
    let (mut a, ida) = connect_with_id(&gw, &stub).await;
    let (mut b, idb) = connect_with_id(&gw, &stub).await;
    let gone = "TWegAcC4EowCHnA=";
    let response = http()
        .post(mgmt(&gw, "@connections"))
        .json(&json!({"connectionIds": [ida, idb, gone], "data": "batch"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        json_of(response).await,
        json!({"sent": [ida, idb], "gone": [gone]})
    );
    assert_eq!(next_text(&mut a).await, "batch");
    assert_eq!(next_text(&mut b).await, "batch");
    let response = http()
        .post(mgmt(&gw, "@connections"))
        .json(&json!({"connectionIds": [ida], "dataBase64": "/wA="}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(next(&mut a).await, Message::binary(vec![0xff, 0]));
    for (body, why) in [
        (
            json!({"connectionIds": [ida, "bad"], "data": "x"}),
            "malformed id",
        ),
        (
            json!({"connectionIds": [ida], "data": "x", "dataBase64": "eA=="}),
            "both",
        ),
        (json!({"connectionIds": [ida]}), "neither"),
        (json!({"ids": [ida], "data": "x"}), "unknown key"),
    ] {
        let response = http()
            .post(mgmt(&gw, "@connections"))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status().as_u16(), 400, "{why}");
        assert_eq!(
            response.headers()["x-amzn-errortype"],
            "BadRequestException",
            "{why}"
        );
    }
    assert!(
        nothing_for(&mut a, Duration::from_millis(100)).await,
        "a 400 sends nothing"
    );
    let big = json!({"connectionIds": [ida], "data": "x".repeat(131_073)});
    let response = http()
        .post(mgmt(&gw, "@connections"))
        .json(&big)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 413);
}

#[tokio::test]
async fn groups_join_send_leave_and_list() {
    let (gw, stub) = gateway("").await;
    let (mut a, ida) = connect_with_id(&gw, &stub).await;
    let (mut b, idb) = connect_with_id(&gw, &stub).await;
    let (mut c, _) = connect_with_id(&gw, &stub).await;
    let member = |group: &str, id: &str| {
        mgmt(
            &gw,
            &format!("@groups/{group}/connections/{}", id.replace('=', "%3D")),
        )
    };
    for id in [&ida, &idb] {
        let response = http().put(member("room", id)).send().await.expect("put");
        assert_eq!(response.status().as_u16(), 204);
    }
    let gone = http()
        .put(member("room", "TWegAcC4EowCHnA="))
        .send()
        .await
        .expect("put");
    assert_eq!(gone.status().as_u16(), 410);
    assert_eq!(gone.headers()["x-amzn-errortype"], "GoneException");
    let url = format!(
        "{}?except={}",
        mgmt(&gw, "@groups/room"),
        ida.replace('=', "%3D")
    );
    let response = http()
        .post(url)
        .body("to the room")
        .send()
        .await
        .expect("post");
    assert_eq!(json_of(response).await, json!({"recipients": 1}));
    assert_eq!(next_text(&mut b).await, "to the room");
    assert!(nothing_for(&mut a, Duration::from_millis(100)).await);
    assert!(nothing_for(&mut c, Duration::from_millis(100)).await);

    let page = json_of(
        http()
            .get(format!("{}?limit=1", mgmt(&gw, "@groups/room")))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    let next_token = page["next"].as_str().expect("a next token").to_owned();
    let page2 = json_of(
        http()
            .get(format!(
                "{}?limit=1&next={}",
                mgmt(&gw, "@groups/room"),
                next_token.replace('=', "%3D")
            ))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(page2["items"].as_array().map(Vec::len), Some(1));
    assert!(page2.get("next").is_none());
    let listed: HashSet<String> = [&page, &page2]
        .iter()
        .map(|p| {
            p["items"][0]["connectionId"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    assert_eq!(listed, HashSet::from([ida.clone(), idb.clone()]));
    assert_eq!(page["items"][0]["groups"], json!(["room"]));
    assert!(
        page["items"][0]["connectedAt"].is_string()
            && page["items"][0]["identity"]["sourceIp"] == "127.0.0.1"
    );

    assert_eq!(
        http()
            .delete(member("room", &ida))
            .send()
            .await
            .expect("delete")
            .status()
            .as_u16(),
        204
    );
    assert_eq!(
        http()
            .delete(member("room", &ida))
            .send()
            .await
            .expect("delete")
            .status()
            .as_u16(),
        204,
        "idempotent"
    );
    assert_eq!(
        http()
            .delete(member("room", "TWegAcC4EowCHnA="))
            .send()
            .await
            .expect("delete")
            .status()
            .as_u16(),
        204
    );
    let response = http()
        .post(mgmt(&gw, "@groups/room"))
        .body("after")
        .send()
        .await
        .expect("post");
    assert_eq!(json_of(response).await, json!({"recipients": 1}));
    let empty = http()
        .post(mgmt(&gw, "@groups/nobody-here"))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(json_of(empty).await, json!({"recipients": 0}));
    let empty_list = json_of(
        http()
            .get(mgmt(&gw, "@groups/nobody-here"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(empty_list, json!({"items": []}));
}

#[tokio::test]
async fn names_and_paging_parameters_are_checked() {
    let (gw, _stub) = gateway("").await;
    for path in [
        "@groups/bad%20name",
        "@users/a%2Fb",
        &format!("@groups/{}", "x".repeat(129)),
    ] {
        let response = http()
            .post(mgmt(&gw, path))
            .body("x")
            .send()
            .await
            .expect("post");
        assert_eq!(response.status().as_u16(), 400, "{path}");
    }
    for query in ["limit=0", "limit=1001", "limit=x", "next=bad"] {
        let response = http()
            .get(format!("{}?{query}", mgmt(&gw, "@connections")))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status().as_u16(), 400, "{query}");
    }
    let unknown = http()
        .patch(mgmt(&gw, "@broadcast"))
        .send()
        .await
        .expect("patch");
    assert_eq!(unknown.status().as_u16(), 404);
}

#[tokio::test]
async fn users_come_from_the_connect_result_and_get_sends_and_closes() {
    let (gw, stub) = gateway("").await;
    stub.on(
        "/connect",
        Behavior::Json(
            200,
            json!({"statusCode": 200, "wsgate": {"user": "alice", "join": ["lobby"]}}),
        ),
    );
    let (mut a1, id1) = connect_with_id(&gw, &stub).await;
    let (mut a2, _) = connect_with_id(&gw, &stub).await;
    stub.on("/connect", Behavior::Json(200, json!({"statusCode": 200})));
    let (mut other, _) = connect_with_id(&gw, &stub).await;
    let response = http()
        .post(mgmt(&gw, "@users/alice"))
        .body("hi alice")
        .send()
        .await
        .expect("post");
    assert_eq!(json_of(response).await, json!({"recipients": 2}));
    assert_eq!(next_text(&mut a1).await, "hi alice");
    assert_eq!(next_text(&mut a2).await, "hi alice");
    assert!(nothing_for(&mut other, Duration::from_millis(100)).await);
    let listed = json_of(
        http()
            .get(format!(
                "{}?user=alice&group=lobby",
                mgmt(&gw, "@connections")
            ))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(listed["items"][0]["user"], "alice");
    let all = json_of(
        http()
            .get(mgmt(&gw, "@connections"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(3));

    let response = http()
        .delete(mgmt(&gw, "@users/alice"))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(json_of(response).await, json!({"closed": 2}));
    assert_eq!(
        close_of(&mut a1).await,
        (1000, "Connection Closed Normally".to_owned())
    );
    assert_eq!(close_of(&mut a2).await.0, 1000);
    let gone = http()
        .post(gw.connection_url(&id1))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(gone.status().as_u16(), 410);
    let lobby = json_of(
        http()
            .get(mgmt(&gw, "@groups/lobby"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(
        lobby,
        json!({"items": []}),
        "closing cleaned the group index"
    );
    let response = http()
        .post(mgmt(&gw, "@users/alice"))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(json_of(response).await, json!({"recipients": 0}));
}

#[tokio::test]
async fn message_route_results_join_groups_before_the_route_response() {
    let (gw, stub) = gateway("").await;
    stub.on("/join", Behavior::Json(200, json!({"statusCode": 200, "body": "joined", "wsgate": {"join": ["news"], "user": "bob"}})));
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    send(&mut client, r#"{"action":"join"}"#).await;
    assert_eq!(next_text(&mut client).await, "joined");
    // The group holds the connection by the time the client is told.
    let response = http()
        .post(mgmt(&gw, "@groups/news"))
        .body("headline")
        .send()
        .await
        .expect("post");
    assert_eq!(json_of(response).await, json!({"recipients": 1}));
    assert_eq!(next_text(&mut client).await, "headline");
    let item = &json_of(
        http()
            .get(format!("{}?user=bob", mgmt(&gw, "@connections")))
            .send()
            .await
            .expect("get"),
    )
    .await["items"][0];
    assert_eq!(item["connectionId"], id.as_str());
    stub.on(
        "/join",
        Behavior::Json(
            200,
            json!({"statusCode": 200, "body": "left", "wsgate": {"leave": ["news"]}}),
        ),
    );
    send(&mut client, r#"{"action":"join"}"#).await;
    assert_eq!(next_text(&mut client).await, "left");
    let response = http()
        .post(mgmt(&gw, "@groups/news"))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(json_of(response).await, json!({"recipients": 0}));
}

#[tokio::test]
async fn a_close_directive_sends_the_route_response_then_closes_with_its_code() {
    let (gw, stub) = gateway("").await;
    stub.on(
        "/join",
        Behavior::Json(
            200,
            json!({"statusCode": 200, "body": "see you", "wsgate": {"close": {"code": 4002, "reason": "bye"}}}),
        ),
    );
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    send(&mut client, r#"{"action":"join"}"#).await;
    assert_eq!(next_text(&mut client).await, "see you");
    assert_eq!(close_of(&mut client).await, (4002, "bye".to_owned()));
    let event = &stub.wait_events("/disconnect", 1).await[0];
    assert_eq!(event["requestContext"]["connectionId"], id.as_str());
    assert_disconnect_reports(event, 4002, "bye");
    // Gone for the management API as soon as the answer came, as after a DELETE.
    assert_eq!(post_to(&gw, &id, "x").await, 410);
}

#[tokio::test]
async fn a_bad_close_directive_is_a_malformed_result_and_closes_nothing() {
    let (gw, stub) = gateway("").await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    for close in [
        json!({"code": 1001}),
        json!({"code": 5000, "reason": "x"}),
        json!({"code": "4000"}),
        json!({"code": 4000, "reason": "r".repeat(124)}),
    ] {
        stub.on(
            "/join",
            Behavior::Json(
                200,
                json!({"statusCode": 200, "body": "not sent", "wsgate": {"close": close}}),
            ),
        );
        send(&mut client, r#"{"action":"join"}"#).await;
        let frame: Value = serde_json::from_str(&next_text(&mut client).await).expect("json");
        assert_eq!(frame["message"], "Internal server error", "{close}");
        assert_eq!(frame["connectionId"], id.as_str());
    }
    assert_eq!(post_to(&gw, &id, "still open").await, 200);
    assert_eq!(next_text(&mut client).await, "still open");
    assert!(stub.events("/disconnect").is_empty());
}

#[tokio::test]
async fn a_close_directive_from_connect_closes_right_after_the_upgrade() {
    let (gw, stub) = gateway("").await;
    stub.on(
        "/connect",
        Behavior::Json(
            200,
            json!({"statusCode": 200, "wsgate": {"close": {"code": 4401, "reason": "sign in first"}}}),
        ),
    );
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    assert_eq!(
        close_of(&mut client).await,
        (4401, "sign in first".to_owned())
    );
    let event = &stub.wait_events("/disconnect", 1).await[0];
    assert_eq!(event["requestContext"]["connectionId"], id.as_str());
    assert_disconnect_reports(event, 4401, "sign in first");
}

#[tokio::test]
async fn delete_user_with_code_and_reason_closes_each_connection_with_them() {
    let (gw, stub) = gateway("").await;
    stub.on(
        "/connect",
        Behavior::Json(200, json!({"statusCode": 200, "wsgate": {"user": "carol"}})),
    );
    let (mut c1, _) = connect_with_id(&gw, &stub).await;
    let (mut c2, _) = connect_with_id(&gw, &stub).await;
    for bad in ["code=abc", "code=1001", "reason=x&code=2000"] {
        let response = http()
            .delete(format!("{}?{bad}", mgmt(&gw, "@users/carol")))
            .send()
            .await
            .expect("delete");
        assert_eq!(response.status().as_u16(), 400, "{bad}");
        assert_eq!(
            response.headers()["x-amzn-errortype"],
            "BadRequestException"
        );
    }
    assert!(nothing_for(&mut c1, Duration::from_millis(100)).await);
    let response = http()
        .delete(format!(
            "{}?code=4003&reason=banned",
            mgmt(&gw, "@users/carol")
        ))
        .send()
        .await
        .expect("delete");
    assert_eq!(json_of(response).await, json!({"closed": 2}));
    for client in [&mut c1, &mut c2] {
        assert_eq!(close_of(client).await, (4003, "banned".to_owned()));
    }
    for event in stub.wait_events("/disconnect", 2).await {
        assert_disconnect_reports(&event, 4003, "banned");
    }
}

#[tokio::test]
async fn every_close_path_cleans_the_indexes() {
    let (gw, stub) = gateway("").await;
    stub.on(
        "/connect",
        Behavior::Json(
            200,
            json!({"statusCode": 200, "wsgate": {"join": ["g"], "user": "u"}}),
        ),
    );
    let (mut by_client, _) = connect_with_id(&gw, &stub).await;
    let (mut by_delete, id_delete) = connect_with_id(&gw, &stub).await;
    let (by_drop, _) = connect_with_id(&gw, &stub).await;
    let count = |gw: &Running| {
        let url = mgmt(gw, "@groups/g");
        async move {
            json_of(http().get(url).send().await.expect("get")).await["items"]
                .as_array()
                .map_or(0, Vec::len)
        }
    };
    assert_eq!(count(&gw).await, 3);
    futures_util::SinkExt::send(&mut by_client, Message::Close(None))
        .await
        .expect("close");
    assert!(matches!(next(&mut by_client).await, Message::Close(_)));
    http()
        .delete(gw.connection_url(&id_delete))
        .send()
        .await
        .expect("delete");
    assert_eq!(close_of(&mut by_delete).await.0, 1000);
    drop(by_drop);
    stub.wait_events("/disconnect", 3).await;
    assert_eq!(count(&gw).await, 0);
    let users = json_of(
        http()
            .get(format!("{}?user=u", mgmt(&gw, "@connections")))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(users, json!({"items": []}));
}

#[tokio::test]
async fn a_stalled_reader_does_not_slow_the_others_and_stays_bounded() {
    let (gw, stub) = gateway("[limits]\noutbox_bytes = 262144").await;
    let (stalled, stalled_id) = connect_with_id(&gw, &stub).await;
    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(connect_with_id(&gw, &stub).await.0);
    }
    let payload = "x".repeat(100 * 1024);
    let mut skipped = 0;
    for round in 0..80 {
        let response = http()
            .post(mgmt(&gw, "@broadcast"))
            .body(payload.clone())
            .send()
            .await
            .expect("post");
        let body = json_of(response).await;
        skipped += body["skipped"].as_u64().unwrap_or(0);
        assert!(
            body["recipients"].as_u64().expect("n") >= 3,
            "round {round}: {body}"
        );
        for reader in &mut readers {
            assert_eq!(
                next_text(reader).await.len(),
                payload.len(),
                "round {round}"
            );
        }
    }
    assert!(
        skipped > 0,
        "the stalled reader's outbox filled and it was skipped"
    );
    let session = gw
        .gateway
        .hub()
        .get(&wsgate_core::id::ConnectionId::parse(&stalled_id).expect("id"))
        .expect("still open");
    assert!(
        session.outbox.queued_bytes() <= 262_144,
        "bounded: {}",
        session.outbox.queued_bytes()
    );
    drop(stalled);
}

#[tokio::test]
async fn close_policy_closes_a_stalled_reader_with_1008() {
    let (gw, stub) = gateway("[limits]\noutbox_bytes = 262144\nfanout_overflow = \"close\"").await;
    let (_stalled, stalled_id) = connect_with_id(&gw, &stub).await;
    let (mut reader, _) = connect_with_id(&gw, &stub).await;
    let payload = "y".repeat(100 * 1024);
    let mut closed = 0;
    for _ in 0..80 {
        let body = json_of(
            http()
                .post(mgmt(&gw, "@broadcast"))
                .body(payload.clone())
                .send()
                .await
                .expect("post"),
        )
        .await;
        assert_eq!(next_text(&mut reader).await.len(), payload.len());
        closed += body["closed"].as_u64().unwrap_or(0);
        if closed > 0 {
            break;
        }
    }
    assert_eq!(closed, 1);
    let event = &stub.wait_events("/disconnect", 1).await[0];
    assert_eq!(event["requestContext"]["connectionId"], stalled_id.as_str());
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1008);
}

#[tokio::test]
async fn every_documented_path_answers() {
    let (gw, stub) = gateway("").await;
    let (_client, id) = connect_with_id(&gw, &stub).await;
    let mut spare = Vec::new();
    let doc = json_of(
        http()
            .get(mgmt(&gw, "@openapi.json"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(doc["openapi"], "3.1.0");
    let served: Value =
        serde_json::from_str(wsgate::mgmt::OPENAPI).expect("the checked-in document is JSON");
    assert_eq!(doc, served);
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 7);
    let mut calls = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let body = if path == "/@connections" && method == "post" {
                json!({"connectionIds": [id], "data": "x"}).to_string()
            } else {
                "x".to_owned()
            };
            for base in [
                format!("http://{}/dev", gw.addr()),
                format!("http://{}", gw.addr()),
            ] {
                let mut target = id.clone();
                if path == "/@connections/{connectionId}" && method == "delete" {
                    // Each DELETE closes its connection: give it one of its own.
                    let (client, fresh) = connect_with_id(&gw, &stub).await;
                    spare.push(client);
                    target = fresh;
                }
                let concrete = path
                    .replace("{connectionId}", &target.replace('=', "%3D"))
                    .replace("{group}", "g")
                    .replace("{user}", "u");
                let url = format!("{base}{concrete}");
                let response = http()
                    .request(method.to_uppercase().parse().expect("method"), &url)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("call");
                let status = response.status().as_u16();
                assert!((200..300).contains(&status), "{method} {url}: {status}");
                calls += 1;
            }
        }
    }
    assert!(calls >= 26, "{calls}");
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_leaves_the_groups_too() {
    let gw = TestGateway::builder()
        .toml("[limits]\nidle_timeout = \"30s\"")
        .start()
        .await;
    let mut client = gw.connect().await;
    let hub = gw.gateway.hub();
    let id = hub.ids()[0];
    hub.join(&id, "g").expect("joins");
    hub.set_user(&id, Some("u")).expect("sets");
    while let Some(message) = client.next().await {
        if matches!(message, Ok(Message::Close(_))) {
            break;
        }
    }
    // The session removes itself right after the close frame.
    for _ in 0..100 {
        if hub.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(hub.group_members("g").is_empty());
    assert!(hub.user_connections("u").is_empty());
}

#[tokio::test]
async fn shutdown_leaves_no_group_behind() {
    let (gw, stub) = gateway("").await;
    stub.on(
        "/connect",
        Behavior::Json(
            200,
            json!({"statusCode": 200, "wsgate": {"join": ["g"], "user": "u"}}),
        ),
    );
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect_with_id(&gw, &stub).await.0);
    }
    let hub = gw.gateway.hub().clone();
    assert_eq!(hub.group_members("g").len(), 3);
    let stopping = tokio::spawn(gw.gateway.shutdown());
    for client in &mut clients {
        assert_eq!(close_of(client).await.0, 1001);
        let _ = futures_util::SinkExt::close(client).await;
    }
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("in time")
        .expect("joined");
    assert!(hub.group_members("g").is_empty());
    assert!(hub.user_connections("u").is_empty());
    assert!(hub.is_empty());
}
