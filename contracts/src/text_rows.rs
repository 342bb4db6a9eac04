//! Rows of text values packed into one buffer: what a bulk read hands a load, without a `String`
//! per value.
//!
//! A load that reads a whole table at start (100,000 resources) used to decode each row into a
//! tuple of `String`s, turn it into an owned fact and free it all again once the index had
//! copied what it keeps: about ten allocations and nine frees a row. [`TextRows`] holds a chunk
//! of rows as one text buffer and each value's span in it; a reader borrows `&str`s from it.

use std::fmt;

/// Rows of `columns` values each, every value a text or none, in one buffer.
///
/// Filled a value at a time with [`TextRows::push`], a row's values in column order; read with
/// [`TextRows::iter`] or [`TextRows::value`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TextRows {
    columns: usize,
    text: String,
    /// Each value's (start, length) in `text`; [`NONE`] as the start for none.
    spans: Vec<(u32, u32)>,
}

/// The start that marks a value that is none.
const NONE: u32 = u32::MAX;

/// The buffer would pass 4 GiB, the most a span can address: cut the chunk before that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a chunk of text rows cannot hold more than 4 GiB of text")]
pub struct TextRowsFull;

impl TextRows {
    /// No rows, of `columns` values each (at least one).
    pub fn new(columns: usize) -> Self {
        Self::with_capacity(columns, 0, 0)
    }

    /// No rows, with room for `rows` rows and `bytes` bytes of text.
    pub fn with_capacity(columns: usize, rows: usize, bytes: usize) -> Self {
        let columns = columns.max(1);
        Self {
            columns,
            text: String::with_capacity(bytes),
            spans: Vec::with_capacity(rows.saturating_mul(columns)),
        }
    }

    /// Appends the next value: the first of a new row once the last row is complete.
    pub fn push(&mut self, value: Option<&str>) -> Result<(), TextRowsFull> {
        let span = match value {
            None => (NONE, 0),
            Some(value) => {
                let start = u32::try_from(self.text.len()).map_err(|_| TextRowsFull)?;
                let len = u32::try_from(value.len()).map_err(|_| TextRowsFull)?;
                // The end must stay below NONE too.
                if start.checked_add(len).is_none_or(|end| end == NONE) {
                    return Err(TextRowsFull);
                }
                self.text.push_str(value);
                (start, len)
            }
        };
        self.spans.push(span);
        Ok(())
    }

    /// Values per row.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Complete rows.
    pub fn len(&self) -> usize {
        self.spans.len() / self.columns
    }

    /// No complete row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values pushed after the last complete row (0 when every row is complete).
    pub fn partial(&self) -> usize {
        self.spans.len() % self.columns
    }

    /// Bytes of text held.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Row `row`'s value in `column`; none for a none value or past the end.
    pub fn value(&self, row: usize, column: usize) -> Option<&str> {
        if column >= self.columns || row >= self.len() {
            return None;
        }
        let (start, len) = self.spans[row * self.columns + column];
        if start == NONE {
            return None;
        }
        // Spans are built from `text` as it was pushed, so they are in bounds and on
        // character boundaries.
        self.text.get(start as usize..(start + len) as usize)
    }

    /// Row `row`.
    pub fn row(&self, row: usize) -> TextRow<'_> {
        TextRow { rows: self, row }
    }

    /// The complete rows, in the order they were pushed.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = TextRow<'_>> {
        (0..self.len()).map(|row| self.row(row))
    }
}

impl fmt::Debug for TextRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|row| {
                (0..self.columns)
                    .map(|column| row.get(column))
                    .collect::<Vec<_>>()
            }))
            .finish()
    }
}

/// One row of [`TextRows`], borrowed.
#[derive(Clone, Copy)]
pub struct TextRow<'a> {
    rows: &'a TextRows,
    row: usize,
}

impl<'a> TextRow<'a> {
    /// The value in `column`; none for a none value or a column past the row's end.
    pub fn get(&self, column: usize) -> Option<&'a str> {
        self.rows.value(self.row, column)
    }
}

/// Parses a JSON array of rows, each an array of exactly `columns` strings or nulls (SQLite's
/// `json_group_array(json_array(…))`), into [`TextRows`] made room for `count` rows at once.
/// Escaped strings are unescaped into the parser's scratch space, so no value is allocated.
pub fn parse_json_rows(
    json: &str,
    columns: usize,
    count: usize,
) -> Result<TextRows, serde_json::Error> {
    use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};

    /// The outer array: one [`Row`] per element.
    struct Rows(TextRows);
    /// One row's array.
    struct Row<'r>(&'r mut TextRows);
    /// One value: a string or null.
    struct Value<'r>(&'r mut TextRows);

    impl<'de> Visitor<'de> for Rows {
        type Value = TextRows;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of rows")
        }
        fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<TextRows, A::Error> {
            while seq.next_element_seed(Row(&mut self.0))?.is_some() {}
            Ok(self.0)
        }
    }
    impl<'de> DeserializeSeed<'de> for Rows {
        type Value = TextRows;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<TextRows, D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Row<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a row of {} values", self.0.columns())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let columns = self.0.columns();
            let mut values = 0;
            while seq.next_element_seed(Value(self.0))?.is_some() {
                values += 1;
                if values > columns {
                    return Err(A::Error::invalid_length(values, &self));
                }
            }
            if values < columns {
                return Err(A::Error::invalid_length(values, &self));
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Row<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Value<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a text or null")
        }
        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<(), E> {
            self.0.push(Some(value)).map_err(E::custom)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
            self.0.push(None).map_err(E::custom)
        }
    }
    impl<'de> DeserializeSeed<'de> for Value<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    // The packed text is shorter than the JSON that quotes it.
    let rows = TextRows::with_capacity(columns, count, json.len());
    let mut parser = serde_json::Deserializer::from_str(json);
    let rows = Rows(rows).deserialize(&mut parser)?;
    parser.end()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(rows: &TextRows) -> Vec<Vec<Option<&str>>> {
        rows.iter()
            .map(|row| (0..rows.columns()).map(|c| row.get(c)).collect())
            .collect()
    }

    #[test]
    fn values_read_back_as_pushed_with_none_apart_from_empty() {
        let mut rows = TextRows::new(3);
        for value in [
            Some("a"),
            None,
            Some(""),
            Some("ünï \"q\""),
            Some("b"),
            None,
        ] {
            rows.push(value).unwrap();
        }
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.partial(), 0);
        assert_eq!(
            values(&rows),
            [
                vec![Some("a"), None, Some("")],
                vec![Some("ünï \"q\""), Some("b"), None]
            ]
        );
        assert_eq!(rows.value(1, 3), None, "a column past the end");
        assert_eq!(rows.value(2, 0), None, "a row past the end");
        rows.push(Some("c")).unwrap();
        assert_eq!(
            (rows.len(), rows.partial()),
            (2, 1),
            "an incomplete row is not read"
        );
    }

    #[test]
    fn json_rows_parse_texts_nulls_and_escapes_and_refuse_anything_else() {
        let rows =
            parse_json_rows(r#"[["a",null,"x\"y\\z\u00e9\n"],["",  "✓", null]]"#, 3, 2).unwrap();
        assert_eq!(
            values(&rows),
            [
                vec![Some("a"), None, Some("x\"y\\zé\n")],
                vec![Some(""), Some("✓"), None]
            ]
        );
        assert!(parse_json_rows("[]", 3, 0).unwrap().is_empty());
        for bad in [
            r#"[["a","b"]]"#,
            r#"[["a","b","c","d"]]"#,
            r#"[["a",1,"c"]]"#,
            r#"[["a",["b"],"c"]]"#,
            r#"[["a","b","c"]] ["#,
            r#"{"a":1}"#,
        ] {
            assert!(parse_json_rows(bad, 3, 1).is_err(), "{bad}");
        }
    }
}
