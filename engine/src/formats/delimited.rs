//! DELIMITED (CSV) fields: parsing one line into fields and writing fields with the same
//! minimal quoting ksqlDB's CSV printer applies.

/// Splits one line into fields; empty fields are NULL.
pub fn parse_line(line: &[u8], delimiter: char) -> Result<Vec<Option<String>>, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter as u8)
        .flexible(true)
        .from_reader(line);
    let mut rec = csv::StringRecord::new();
    match rdr.read_record(&mut rec) {
        Ok(true) => Ok(rec
            .iter()
            .map(|f| {
                if f.is_empty() {
                    None
                } else {
                    Some(f.to_string())
                }
            })
            .collect()),
        Ok(false) => Ok(vec![None]),
        Err(e) => Err(format!("invalid delimited data: {e}")),
    }
}

/// Whether a field needs quotes: CSV's minimal rule, plus (for the first field of a line) any
/// leading character that is not a letter or digit.
fn needs_quotes(s: &str, first: bool, delimiter: char) -> bool {
    let Some(c) = s.chars().next() else {
        return first;
    };
    if first && !c.is_ascii_alphanumeric() {
        return true;
    }
    if c <= '#' {
        return true;
    }
    if s.chars()
        .any(|c| c == '\n' || c == '\r' || c == '"' || c == delimiter)
    {
        return true;
    }
    s.chars().last().is_some_and(|c| c <= ' ')
}

/// Joins fields into one line; `None` is written as an empty field.
pub fn write_line(fields: &[Option<String>], delimiter: char) -> String {
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(delimiter);
        }
        let Some(s) = f else { continue };
        if needs_quotes(s, i == 0, delimiter) {
            out.push('"');
            out.push_str(&s.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_ksql() {
        let f = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        assert_eq!(write_line(&f(&["-1", "a", "1"]), ','), "\"-1\",a,1");
        assert_eq!(write_line(&f(&["a,b", "c"]), ','), "\"a,b\",c");
        assert_eq!(write_line(&[None, Some("x".into())], ','), ",x");
        assert_eq!(
            parse_line(b"1,,three", ',').unwrap(),
            vec![Some("1".into()), None, Some("three".into())]
        );
        assert_eq!(
            parse_line(b"\"a,b\"|c", '|').unwrap(),
            vec![Some("a,b".into()), Some("c".into())]
        );
    }
}
