//! Value representations a Debezium user chooses per connector, shared by the connector
//! crates: `decimal.handling.mode` and `binary.handling.mode`.

use base64::Engine as _;
use bytes::Bytes;

use crate::error::Error;
use crate::properties::Scope;
use crate::schema::SchemaType;
use crate::value::Value;

/// `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecimalMode {
    /// Kafka Connect `Decimal` (bytes), or `VariableScaleDecimal` where the scale varies.
    #[default]
    Precise,
    /// `float64`.
    Double,
    /// The plain decimal text.
    String,
}

impl DecimalMode {
    /// `decimal.handling.mode` (`precise`, `double`, `string`; default `precise`).
    pub fn from_props(p: &Scope<'_>) -> Result<Self, Error> {
        Ok(
            match p.one_of(
                "decimal.handling.mode",
                &["precise", "double", "string"],
                "precise",
            )? {
                "double" => DecimalMode::Double,
                "string" => DecimalMode::String,
                _ => DecimalMode::Precise,
            },
        )
    }
}

/// `binary.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinaryMode {
    /// Bytes (base64 in JSON).
    #[default]
    Bytes,
    /// A base64 string.
    Base64,
    /// A URL-safe base64 string.
    Base64UrlSafe,
    /// A lower-case hex string.
    Hex,
}

impl BinaryMode {
    /// `binary.handling.mode` (`bytes`, `base64`, `base64-url-safe`, `hex`; default
    /// `bytes`).
    pub fn from_props(p: &Scope<'_>) -> Result<Self, Error> {
        Ok(
            match p.one_of(
                "binary.handling.mode",
                &["bytes", "base64", "base64-url-safe", "hex"],
                "bytes",
            )? {
                "base64" => BinaryMode::Base64,
                "base64-url-safe" => BinaryMode::Base64UrlSafe,
                "hex" => BinaryMode::Hex,
                _ => BinaryMode::Bytes,
            },
        )
    }

    /// The schema type of a binary value in this mode.
    pub fn schema_type(self) -> SchemaType {
        match self {
            BinaryMode::Bytes => SchemaType::Bytes,
            _ => SchemaType::String,
        }
    }

    /// A binary value in this mode.
    pub fn encode(self, raw: Bytes) -> Value {
        match self {
            BinaryMode::Bytes => Value::Bytes(raw),
            BinaryMode::Base64 => {
                Value::from(base64::engine::general_purpose::STANDARD.encode(&raw))
            }
            BinaryMode::Base64UrlSafe => {
                Value::from(base64::engine::general_purpose::URL_SAFE.encode(&raw))
            }
            BinaryMode::Hex => {
                let mut hex = String::with_capacity(raw.len() * 2);
                for b in raw.iter() {
                    hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
                    hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
                }
                Value::from(hex)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_modes_encode_as_debezium_does() {
        let raw = Bytes::from_static(&[0xfb, 0xff, 0x00, 0x41]);
        assert_eq!(
            BinaryMode::Bytes.encode(raw.clone()),
            Value::Bytes(raw.clone())
        );
        assert_eq!(
            BinaryMode::Base64.encode(raw.clone()),
            Value::from("+/8AQQ==")
        );
        assert_eq!(
            BinaryMode::Base64UrlSafe.encode(raw.clone()),
            Value::from("-_8AQQ==")
        );
        assert_eq!(BinaryMode::Hex.encode(raw), Value::from("fbff0041"));
    }
}
