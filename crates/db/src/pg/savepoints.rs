//! A transaction's savepoints as PostgreSQL spells them: `SAVEPOINT name`,
//! `RELEASE [SAVEPOINT] name` and `ROLLBACK [WORK | TRANSACTION] TO
//! [SAVEPOINT] name`, parsed here and run by the engine in the session's
//! transaction.

use super::cursors::unquote;
use crate::writer::SavepointOp;

/// The savepoint statement `sql` is, if it is one; `Err` when it is one
/// without a name.
pub fn parse(sql: &str) -> Option<Result<SavepointOp, String>> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower
        .iter()
        .map(|w| w.trim_end_matches(';'))
        .filter(|w| !w.is_empty())
        .collect();
    let (make, name_at): (fn(String) -> SavepointOp, usize) = match lower.as_slice() {
        ["savepoint", ..] => (SavepointOp::Set, 1),
        ["release", "savepoint", ..] => (SavepointOp::Release, 2),
        ["release", ..] => (SavepointOp::Release, 1),
        ["rollback" | "abort", rest @ ..] => {
            let after = rest
                .iter()
                .skip_while(|w| matches!(**w, "work" | "transaction"))
                .collect::<Vec<_>>();
            match after.as_slice() {
                [to, savepoint, ..] if **to == "to" && **savepoint == "savepoint" => {
                    (SavepointOp::RollbackTo, lower.len() - after.len() + 2)
                }
                [to, ..] if **to == "to" => {
                    (SavepointOp::RollbackTo, lower.len() - after.len() + 1)
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    let name = words
        .get(name_at)
        .map(|w| unquote(w))
        .filter(|n| !n.is_empty());
    Some(
        name.map(make)
            .ok_or_else(|| "a savepoint statement needs a savepoint name".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgresqls_savepoint_statements_are_parsed() {
        let parsed = |sql| parse(sql).and_then(|r| r.ok());
        assert_eq!(parsed("SAVEPOINT a"), Some(SavepointOp::Set("a".into())));
        assert_eq!(
            parsed("savepoint \"Sp\";"),
            Some(SavepointOp::Set("Sp".into()))
        );
        assert_eq!(
            parsed("RELEASE SAVEPOINT B"),
            Some(SavepointOp::Release("b".into()))
        );
        assert_eq!(parsed("release b"), Some(SavepointOp::Release("b".into())));
        assert_eq!(
            parsed("ROLLBACK TO SAVEPOINT sa_savepoint_1"),
            Some(SavepointOp::RollbackTo("sa_savepoint_1".into()))
        );
        assert_eq!(
            parsed("rollback transaction to c"),
            Some(SavepointOp::RollbackTo("c".into()))
        );
        assert_eq!(parse("ROLLBACK"), None);
        assert_eq!(parse("SELECT 1"), None);
        assert!(matches!(parse("SAVEPOINT"), Some(Err(_))));
    }
}
