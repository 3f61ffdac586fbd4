//! The database service's bodies as a client in another language writes and
//! reads them: MessagePack built by hand, not with the crate's types.

mod common;

use backroom_api::db::method;
use backroom_frame::body;
use bytes::Bytes;
use common::{admin, start};

/// A MessagePack str of up to 31 bytes.
fn fixstr(text: &str) -> Vec<u8> {
    let mut out = vec![0xa0 | u8::try_from(text.len()).expect("short")];
    out.extend_from_slice(text.as_bytes());
    out
}

/// `{"statement": {"sql": sql, <key>: <value>}}`, with the value's bytes
/// already encoded.
fn query_body(sql: &str, key: &str, value: &[u8]) -> Bytes {
    let mut out = vec![0x81];
    out.extend(fixstr("statement"));
    out.push(0x82);
    out.extend(fixstr("sql"));
    out.extend(fixstr(sql));
    out.extend(fixstr(key));
    out.extend_from_slice(value);
    Bytes::from(out)
}

/// The encoded `rows` entry of an answer: the key, then the rows array.
fn rows_entry(rows: &[u8]) -> Vec<u8> {
    let mut out = fixstr("rows");
    out.extend_from_slice(rows);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `[1, "a", nil, bin(00), 1.5]`.
const FIVE_VALUES: &[u8] = &[
    0x95, 0x01, 0xa1, b'a', 0xc0, 0xc4, 0x01, 0x00, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,
];

#[tokio::test]
async fn plain_messagepack_values_come_back_as_plain_messagepack() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    let request = query_body("SELECT ?1, ?2, ?3, ?4, ?5", "params", FIVE_VALUES);
    let answer = db
        .client()
        .call(method::QUERY, request)
        .await
        .expect("query");
    // One row (fixarray of 1) holding exactly the five values sent.
    let mut row = vec![0x91];
    row.extend_from_slice(FIVE_VALUES);
    assert!(contains(&answer, &rows_entry(&row)), "{answer:02x?}");
    server.stop().await;
}

#[tokio::test]
async fn named_parameters_are_a_map_from_name_to_value() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    let mut named = vec![0x82];
    named.extend(fixstr(":a"));
    named.push(0x07);
    named.extend(fixstr("b"));
    named.extend(fixstr("x"));
    let request = query_body("SELECT :a, :b", "named", &named);
    let answer = db
        .client()
        .call(method::QUERY, request)
        .await
        .expect("query");
    assert!(
        contains(&answer, &rows_entry(&[0x91, 0x92, 0x07, 0xa1, b'x'])),
        "{answer:02x?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_infinite_real_stays_a_float() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    let request = query_body("SELECT 9e999, -9e999", "params", &[0x90]);
    let answer = db
        .client()
        .call(method::QUERY, request)
        .await
        .expect("query");
    let mut row = vec![0x91, 0x92, 0xcb];
    row.extend_from_slice(&f64::INFINITY.to_be_bytes());
    row.push(0xcb);
    row.extend_from_slice(&f64::NEG_INFINITY.to_be_bytes());
    assert!(contains(&answer, &rows_entry(&row)), "{answer:02x?}");
    server.stop().await;
}

#[tokio::test]
async fn a_method_whose_arguments_are_all_optional_takes_nil_or_an_empty_map() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    for request in [body::NIL.clone(), body::EMPTY_MAP.clone()] {
        for name in [method::SCHEMA, method::LIST_DATABASES] {
            let answer = db.client().call(name, request.clone()).await;
            assert!(answer.is_ok(), "{name} {request:02x?}: {answer:?}");
        }
    }
    server.stop().await;
}
