//! Between SQLite's values and PostgreSQL's: the type OIDs of columns and
//! parameters, rows encoded in text or binary, parameters decoded, and the
//! engine's errors given SQLSTATE codes.

use std::sync::Arc;

use backroom_api::db::{Column, Value};
use backroom_frame::error::{Error, ErrorCode};
use pgwire::api::Type;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;

/// The PostgreSQL type of a column SQLite declared as `decl`, by SQLite's
/// own affinity rules, with bool, bytea and numeric where declared so.
pub fn declared_type(decl: &str) -> Type {
    let d = decl.to_ascii_uppercase();
    if d.contains("BOOL") {
        Type::BOOL
    } else if d.contains("INT") {
        Type::INT8
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        Type::TEXT
    } else if d.contains("BLOB") || d.contains("BYTEA") {
        Type::BYTEA
    } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        Type::FLOAT8
    } else if d.contains("NUMERIC") || d.contains("DECIMAL") {
        Type::NUMERIC
    } else {
        Type::TEXT
    }
}

/// The type of a value SQLite computed (no declared type).
fn value_type(value: &Value) -> Option<Type> {
    match value {
        Value::Null => None,
        Value::Integer(_) => Some(Type::INT8),
        Value::Real(_) => Some(Type::FLOAT8),
        Value::Text(_) => Some(Type::TEXT),
        Value::Blob(_) => Some(Type::BYTEA),
    }
}

/// The fields of a result: declared types, else (when the rows are at
/// hand) the type of the column's first value, else text.
pub fn fields(columns: &[Column], rows: Option<&[Vec<Value>]>, format: &Format) -> Vec<FieldInfo> {
    columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let ty = match &column.decl_type {
                Some(decl) => declared_type(decl),
                None => rows
                    .and_then(|rows| rows.iter().find_map(|r| r.get(i).and_then(value_type)))
                    .unwrap_or(Type::TEXT),
            };
            FieldInfo::new(column.name.clone(), None, None, ty, format.format_for(i))
        })
        .collect()
}

/// One row, each value encoded as its field's type says.
pub fn encode_row(fields: &Arc<Vec<FieldInfo>>, row: &[Value]) -> PgWireResult<DataRow> {
    let mut encoder = DataRowEncoder::new(fields.clone());
    for (value, field) in row.iter().zip(fields.iter()) {
        match value {
            // PostgreSQL spells these out in text, and drivers parse them so.
            Value::Real(v) if field.format() == FieldFormat::Text && !v.is_finite() => {
                encoder.encode_field(&pg_special_float(*v))?;
            }
            _ => encode_value(&mut encoder, value, field.datatype())?,
        }
    }
    encoder.finish()
}

fn pg_special_float(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

fn encode_value(encoder: &mut DataRowEncoder, value: &Value, ty: &Type) -> PgWireResult<()> {
    match (value, ty) {
        (Value::Null, _) => encoder.encode_field(&None::<i64>),
        (Value::Integer(v), &Type::BOOL) => encoder.encode_field(&(*v != 0)),
        (Value::Integer(v), &Type::INT8) => encoder.encode_field(v),
        (Value::Integer(v), &Type::FLOAT8) => encoder.encode_field(&(*v as f64)),
        (Value::Real(v), &Type::FLOAT8) => encoder.encode_field(v),
        (Value::Real(v), &Type::INT8) if v.fract() == 0.0 => encoder.encode_field(&(*v as i64)),
        (Value::Blob(v), _) if *ty == Type::BYTEA || *ty == Type::TEXT => {
            encoder.encode_field(&v.as_slice())
        }
        (Value::Text(v), &Type::BYTEA) => encoder.encode_field(&v.as_bytes()),
        (Value::Text(v), _) => encoder.encode_field(&v.as_str()),
        (Value::Integer(v), _) => encoder.encode_field(&v.to_string()),
        (Value::Real(v), _) => encoder.encode_field(&v.to_string()),
        (Value::Blob(_), _) => Err(refuse(
            "42804",
            format!("a blob cannot be sent as {}; select it as bytea", ty.name()),
        )),
    }
}

/// The type of parameter `n` (from 1): as the client gave it in Parse, else
/// as a cast in the SQL says, else text (SQLite converts by the column's
/// affinity).
pub fn param_type(
    given: &[Option<Type>],
    casts: &std::collections::HashMap<usize, Type>,
    n: usize,
) -> Type {
    given
        .get(n - 1)
        .cloned()
        .flatten()
        .filter(|t| *t != Type::UNKNOWN)
        .or_else(|| casts.get(&n).cloned())
        .unwrap_or(Type::TEXT)
}

/// Parameter `i` (from 0) of a portal as a SQLite value.
pub fn param<S: Clone>(portal: &Portal<S>, i: usize, ty: &Type) -> PgWireResult<Value> {
    Ok(match *ty {
        Type::BOOL => portal
            .parameter::<bool>(i, ty)?
            .map(|b| Value::Integer(b.into())),
        Type::INT2 => portal
            .parameter::<i16>(i, ty)?
            .map(|v| Value::Integer(v.into())),
        Type::INT4 => portal
            .parameter::<i32>(i, ty)?
            .map(|v| Value::Integer(v.into())),
        Type::INT8 => portal.parameter::<i64>(i, ty)?.map(Value::Integer),
        Type::FLOAT4 => portal
            .parameter::<f32>(i, ty)?
            .map(|v| Value::Real(v.into())),
        Type::FLOAT8 => portal.parameter::<f64>(i, ty)?.map(Value::Real),
        Type::BYTEA => portal.parameter::<Vec<u8>>(i, ty)?.map(Value::Blob),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            portal.parameter::<String>(i, ty)?.map(Value::Text)
        }
        _ => raw_text(portal, i, ty)?,
    }
    .unwrap_or(Value::Null))
}

/// A parameter of a type the face does not convert, taken as its text.
fn raw_text<S: Clone>(portal: &Portal<S>, i: usize, ty: &Type) -> PgWireResult<Option<Value>> {
    let Some(bytes) = portal.parameters.get(i).cloned().flatten() else {
        return Ok(None);
    };
    if portal.parameter_format.is_binary(i) {
        return Err(refuse(
            "0A000",
            format!(
                "parameters of type {} are taken in text format only",
                ty.name()
            ),
        ));
    }
    Ok(Some(Value::Text(
        String::from_utf8_lossy(&bytes).into_owned(),
    )))
}

/// An error with a SQLSTATE, as the client sees it.
pub fn refuse(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message.into(),
    )))
}

/// A session-ending error with a SQLSTATE.
pub fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message.into(),
    )))
}

/// The engine's error as PostgreSQL would report it.
pub fn error_info(error: &Error) -> ErrorInfo {
    ErrorInfo::new(
        "ERROR".into(),
        sqlstate(error).into(),
        error.message.clone(),
    )
}

/// The SQLSTATE of an engine error: from SQLite's extended code where the
/// message carries one, else from its kind.
pub fn sqlstate(error: &Error) -> &'static str {
    let message = error.message.as_str();
    let extended = message
        .rsplit_once("extended code ")
        .and_then(|(_, rest)| rest.trim_end_matches(')').parse::<i32>().ok());
    match extended {
        Some(2067 | 1555) => return "23505",
        Some(1299) => return "23502",
        Some(787) => return "23503",
        Some(275) => return "23514",
        Some(8 | 264 | 520 | 776 | 1032 | 1288) => return "25006",
        _ => {}
    }
    if message.contains("no such table") || message.contains("no such view") {
        return "42P01";
    }
    if message.contains("no such column") {
        return "42703";
    }
    if message.contains("syntax error") || message.contains("incomplete input") {
        return "42601";
    }
    match error.code {
        ErrorCode::Cancelled | ErrorCode::Timeout => "57014",
        ErrorCode::Forbidden if message.contains("read-only") => "25006",
        ErrorCode::Forbidden | ErrorCode::Unauthorized => "42501",
        ErrorCode::Busy => "40001",
        ErrorCode::Conflict => "23000",
        ErrorCode::TooLarge => "54000",
        ErrorCode::NotFound => "42704",
        ErrorCode::BadRequest => "42000",
        _ => "XX000",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_follow_sqlite_affinity() {
        assert_eq!(declared_type("INTEGER"), Type::INT8);
        assert_eq!(declared_type("bigint"), Type::INT8);
        assert_eq!(declared_type("VARCHAR(20)"), Type::TEXT);
        assert_eq!(declared_type("BLOB"), Type::BYTEA);
        assert_eq!(declared_type("double precision"), Type::FLOAT8);
        assert_eq!(declared_type("BOOLEAN"), Type::BOOL);
        assert_eq!(declared_type("NUMERIC(10,2)"), Type::NUMERIC);
        assert_eq!(declared_type("DATE"), Type::TEXT);
    }

    #[test]
    fn infinities_are_spelled_as_postgresql_does_in_text() {
        let fields = Arc::new(fields(
            &[Column {
                name: "x".into(),
                decl_type: Some("REAL".into()),
            }],
            None,
            &Format::UnifiedText,
        ));
        let row = encode_row(&fields, &[Value::Real(f64::NEG_INFINITY)]).expect("encoded");
        assert!(row.data.ends_with(b"-Infinity"), "{:?}", row.data);
    }

    #[test]
    fn sqlite_constraint_codes_become_sqlstates() {
        let e = |m: &str| Error::new(ErrorCode::Conflict, m);
        assert_eq!(
            sqlstate(&e(
                "UNIQUE constraint failed: t.a (SQLITE_CONSTRAINT, extended code 2067)"
            )),
            "23505"
        );
        assert_eq!(
            sqlstate(&e("x (SQLITE_CONSTRAINT, extended code 1299)")),
            "23502"
        );
        assert_eq!(
            sqlstate(&e("x (SQLITE_CONSTRAINT, extended code 787)")),
            "23503"
        );
        assert_eq!(
            sqlstate(&e("x (SQLITE_CONSTRAINT, extended code 275)")),
            "23514"
        );
        assert_eq!(
            sqlstate(&Error::bad_request(
                "near \"SELEC\": syntax error at offset 0"
            )),
            "42601"
        );
        assert_eq!(
            sqlstate(&Error::bad_request("no such table: nope")),
            "42P01"
        );
        assert_eq!(sqlstate(&Error::cancelled("interrupted")), "57014");
        assert_eq!(sqlstate(&Error::busy("queued")), "40001");
        assert_eq!(
            sqlstate(&Error::forbidden(
                "this user is read-only and the statement writes"
            )),
            "25006"
        );
    }
}
