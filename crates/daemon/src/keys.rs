//! The known keys of a config file's top level, which two structs share: the
//! common keys and a daemon's own. Each struct's field names are read from
//! its `Deserialize` implementation, so they are written once, in the struct.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use toml::Spanned;
use toml::de::DeTable;

/// The field names of a struct, as its derived `Deserialize` passes them to
/// `deserialize_struct`; empty for anything that is not a plain struct.
pub(crate) fn field_names<T: de::DeserializeOwned>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    // The deserializer always fails once it has the names; that is its job.
    let _ = T::deserialize(FieldNames(&mut names));
    names
}

/// A deserializer that records a struct's field names and reads nothing.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct has field names"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("field names read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Fails on the first top-level key that is not in `known`, with the key's
/// own position in the document.
pub(crate) fn check_top_level<'de, D: Deserializer<'de>>(
    document: D,
    known: &[&str],
) -> Result<(), D::Error> {
    document.deserialize_map(TopLevel(known))
}

struct TopLevel<'a>(&'a [&'a str]);

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table of settings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // The check runs inside the key's own deserialization, so that the
        // error carries the key's position.
        while map.next_key_seed(KnownKey(self.0))?.is_some() {
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

struct KnownKey<'a>(&'a [&'a str]);

impl<'de> DeserializeSeed<'de> for KnownKey<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, key: D) -> Result<(), D::Error> {
        key.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KnownKey<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        if self.0.contains(&key) {
            return Ok(());
        }
        let mut known = self.0.to_vec();
        known.sort_unstable();
        Err(E::custom(format!(
            "unknown key `{key}`; the keys here are {}",
            known.join(", ")
        )))
    }
}

/// The part of `document` whose top-level keys are among `fields`.
pub(crate) fn known_only<'i>(
    document: &Spanned<DeTable<'i>>,
    fields: &[&str],
) -> Spanned<DeTable<'i>> {
    let mut part = DeTable::new();
    for (key, value) in document.get_ref().iter() {
        if fields.contains(&key.get_ref().as_ref()) {
            part.insert(key.clone(), value.clone());
        }
    }
    Spanned::new(document.span(), part)
}
