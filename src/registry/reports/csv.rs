//! CSV as RFC 4180 writes it: a header row, CRLF line ends, and a field in
//! double quotes (its quotes doubled) when it holds a comma, a quote, a line
//! break or leading or trailing space. Small enough not to need a crate.

use serde_json::{Map, Value};

/// One field, quoted when it must be.
pub fn field(s: &str) -> String {
    let needs = s.contains([',', '"', '\r', '\n']) || s.starts_with(' ') || s.ends_with(' ');
    if needs {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A JSON value as a cell: empty for null, lists joined with "; ".
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join("; "),
        other => other.to_string(),
    }
}

/// The header and the rows (objects keyed by column) as CSV text.
pub fn write(columns: &[&str], rows: &[Map<String, Value>]) -> String {
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<String>| {
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    };
    line(&mut out, columns.iter().map(|c| field(c)).collect());
    for r in rows {
        line(
            &mut out,
            columns
                .iter()
                .map(|c| field(&cell(r.get(*c).unwrap_or(&Value::Null))))
                .collect(),
        );
    }
    out
}

/// A report's JSON (as the API gives it) as CSV: for clients that asked
/// for JSON and print CSV.
pub fn from_json(report: &Value) -> Result<String, String> {
    let columns: Vec<&str> = report["columns"]
        .as_array()
        .ok_or("the report has no columns")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let rows: Vec<Map<String, Value>> = report["rows"]
        .as_array()
        .ok_or("the report has no rows")?
        .iter()
        .filter_map(|r| r.as_object().cloned())
        .collect();
    Ok(write(&columns, &rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"no\""), "\"say \"\"no\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field(" padded"), "\" padded\"");
        assert_eq!(field(""), "");
    }

    #[test]
    fn rows_follow_the_columns() {
        let mut r = Map::new();
        r.insert("b".into(), Value::from(vec!["x", "y,z"]));
        r.insert("a".into(), Value::from(3));
        let text = write(&["a", "b", "c"], &[r]);
        assert_eq!(text, "a,b,c\r\n3,\"x; y,z\",\r\n");
        let json =
            serde_json::json!({"columns": ["a", "b", "c"], "rows": [{"a": 3, "b": ["x", "y,z"]}]});
        assert_eq!(from_json(&json).unwrap(), text);
    }
}
