//! Avro for connect: Confluent's `AvroConverter` (the Confluent wire format, schemas in a
//! schema registry) and a schema registry client.
//!
//! - [`AvroConverter`] writes a record's key or value as magic byte `0`, the schema's
//!   registry id (big-endian int32) and the Avro binary body, registering the schema
//!   under the subject its [`SubjectStrategy`] names (`<topic>-value` by default), and
//!   reads such bytes back with the writer schema fetched by id. Schemas are mapped as
//!   Confluent's `AvroData` maps them ([`schema`]): Connect names, versions, docs and
//!   parameters survive as `connect.*` properties, so a round trip gives the same
//!   Connect schema, Debezium's semantic names included.
//! - [`RegistryClient`]: register, look up, fetch by id; several URLs tried in turn;
//!   basic (`USER_INFO`) or bearer (`STATIC_TOKEN`) authentication.
//!
//! In a properties file, after [`register`]:
//!
//! ```properties
//! value.converter=io.confluent.connect.avro.AvroConverter
//! value.converter.schema.registry.url=http://127.0.0.1:8081
//! value.converter.basic.auth.credentials.source=USER_INFO
//! value.converter.basic.auth.user.info=user:secret
//! value.converter.value.subject.name.strategy=io.confluent.kafka.serializers.subject.TopicNameStrategy
//! value.converter.auto.register.schemas=true
//! ```
//!
//! In code:
//!
//! ```
//! use connect_avro::{AvroConfig, AvroConverter, RegistryConfig};
//! use connect_core::{Converter, Schema, SchemaType, Value};
//!
//! let converter = AvroConverter::new(AvroConfig::new(RegistryConfig::new("http://127.0.0.1:8081")));
//! // Records without a schema cannot be Avro; tombstones stay null messages.
//! let mut out = Vec::new();
//! assert!(converter.serialize("orders", None, &Value::from("x"), &mut out).is_err());
//! assert!(!converter.serialize("orders", None, &Value::Null, &mut out).unwrap());
//! let _ = Schema::required(SchemaType::Int32);
//! ```

mod converter;
mod error;
mod registry;
pub mod schema;
#[cfg(feature = "test-utils")]
pub mod testing;
pub mod value;

use std::sync::Arc;

pub use converter::{AvroConfig, AvroConverter, SubjectStrategy};
pub use error::AvroError;
pub use registry::{Auth, RegistryClient, RegistryConfig};

/// Confluent's class name for the converter.
pub const AVRO_CONVERTER_CLASS: &str = "io.confluent.connect.avro.AvroConverter";

/// Registers the Avro converter under Confluent's class name.
pub fn register(registry: &mut connect_core::Registry) {
    registry.register_converter(AVRO_CONVERTER_CLASS, |scope, is_key| {
        let config =
            AvroConfig::from_props(scope, is_key).map_err(|e| e.into_core("<configuration>"))?;
        Ok(Arc::new(AvroConverter::new(config)))
    });
}
